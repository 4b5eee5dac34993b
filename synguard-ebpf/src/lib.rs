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
