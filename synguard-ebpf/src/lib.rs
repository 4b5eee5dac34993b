#![no_std]
// The programs live in the binaries; this library exists so `synguard` can name the crate as a
// build dependency (the aya template's trick to get rebuilt when it changes), and to hold what
// both binaries use.

/// A map static named from `synguard_common::map_name!`, the one table of map names user space
/// reads too. aya's `#[map]` takes the name only as a string literal; this emits what it emits
/// (aya-ebpf-macros 0.2: the `maps` link section and the export name the loader finds the map
/// by) with the name from the table.
#[macro_export]
macro_rules! sg_map {
    ($(#[doc = $doc:literal])* $key:ident => static $static:ident: $ty:ty = $init:expr;) => {
        $(#[doc = $doc])*
        #[unsafe(link_section = "maps")]
        #[unsafe(export_name = synguard_common::map_name!($key))]
        pub static $static: $ty = $init;
    };
}

/// A map value the programs address directly (`synguard_common::names::GLOBALS`): the static
/// sits alone in its own data section, which aya makes a one-entry array map, and a reference
/// to it becomes the value's address as a constant (`BPF_PSEUDO_MAP_VALUE`; kernel
/// `array_map_direct_value_addr`, which takes any array of one entry). No lookup and no null
/// check per read: on the SYN path an inlined lookup is a key stored and reloaded, a bound
/// check and a dependent load, and these were five of them (docs/measuring.md, "Values read
/// without a lookup").
///
/// Written by the loader (and `MODE` by the programs too) while programs run, as any map
/// value: hence the cell, so that LLVM never takes the all-zero initial value for a constant.
#[repr(transparent)]
pub struct Global<T>(core::cell::UnsafeCell<T>);

// SAFETY: plain data read and written as map values are, by programs on many CPUs.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// All zeros, as a fresh map's value is (the loader writes it before attaching).
    ///
    /// # Safety
    /// `T` must be plain data for which all zeros is a value.
    pub const unsafe fn zeroed() -> Self {
        // SAFETY: the caller's.
        Global(core::cell::UnsafeCell::new(unsafe { core::mem::zeroed() }))
    }

    /// The value, for reading.
    #[inline(always)]
    pub fn get(&self) -> &T {
        // SAFETY: map memory; writers elsewhere store whole fields, as for any map value.
        unsafe { &*self.0.get() }
    }

    /// The value, for the programs that write it (racing CPUs as with a map value pointer).
    #[inline(always)]
    pub fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}

/// A [`Global`] in its data section, named from `synguard_common::map_name!` and
/// `global_section!`.
#[macro_export]
macro_rules! sg_global {
    ($(#[doc = $doc:literal])* $key:ident => static $static:ident: $ty:ty;) => {
        $(#[doc = $doc])*
        #[unsafe(link_section = synguard_common::global_section!($key))]
        #[unsafe(export_name = synguard_common::map_name!($key))]
        // SAFETY: every global is plain data (`synguard_common`'s map value types).
        pub static $static: $crate::Global<$ty> = unsafe { $crate::Global::zeroed() };
    };
}
