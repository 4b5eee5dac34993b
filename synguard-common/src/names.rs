//! The name of every map the XDP program declares and the loader opens, pins and takes over.
//! Written once, in [`map_name!`]: the constants below serve user space, and the eBPF crate puts
//! the same literals into its `export_name` attributes (an attribute takes a literal, not a
//! constant, which is why the table is a macro).

/// The map's name as a string literal, usable where only a literal goes (attributes).
#[macro_export]
#[rustfmt::skip]
macro_rules! map_name {
    (CONFIG) => { "SG_CONFIG" };
    (PORTS) => { "SG_PORTS" };
    (MODE) => { "SG_MODE" };
    (READY) => { "SG_READY" };
    (SYN_WINDOW) => { "SG_SYN_WINDOW" };
    (REFRESH) => { "SG_REFRESH" };
    (VERDICTS) => { "SG_VERDICTS" };
    (EVENTS) => { "SG_EVENTS" };
    (CLOSING) => { "SG_CLOSING" };
    (POLICY) => { "SG_POLICY" };
    (ALLOW_V4) => { "SG_ALLOW_V4" };
    (ALLOW_V6) => { "SG_ALLOW_V6" };
    (BLOCK_V4) => { "SG_BLOCK_V4" };
    (BLOCK_V6) => { "SG_BLOCK_V6" };
    (SOURCES) => { "SG_SOURCES" };
    (REFLECT) => { "SG_REFLECT" };
    (MONITOR) => { "SG_MONITOR" };
    (FLOOD_EVENTS) => { "SG_FLOOD_EVENTS" };
    (PORT_SYNS) => { "SG_PORT_SYNS" };
    (COOKIE_SECRET) => { "SG_COOKIE_SECRET" };
    (OWN_PROG) => { "SG_OWN_PROG_MB" };
    (WORKSPACE) => { "SG_WORKSPACE" };
    (CLOSING_FILTER) => { "SG_CLOSING_FILTER" };
    (CONNS) => { "SG_CONNS" };
    (CONNS_STATE) => { "SG_CONNS_STATE" };
    (HANDSHAKES) => { "SG_HANDSHAKES" };
    (CONNS_FILTER) => { "SG_CONNS_FILTER" };
    (RP_V4) => { "SG_RP_V4" };
    (LOCAL_V4) => { "SG_LOCAL_V4" };
    (LOCAL_V6) => { "SG_LOCAL_V6" };
    (BOUND) => { "SG_BOUND" };
    // The lab's own programs (`crate::lab`).
    (LAB_TEMPLATE) => { "LAB_TEMPLATE" };
    (LAB_TARGET) => { "LAB_TARGET" };
    (LAB_GEN) => { "LAB_GEN" };
    (LAB_GEN_SEQ) => { "LAB_GEN_SEQ" };
    (LAB_CONNS) => { "LAB_CONNS" };
}

/// The object section of a map the programs address directly, as a string literal: one data
/// section per such map (see [`GLOBALS`]). aya makes each data section a one-entry array map
/// named after the section, and the programs load the value's address as a constant
/// (`BPF_PSEUDO_MAP_VALUE`) instead of looking it up.
#[macro_export]
macro_rules! global_section {
    ($key:ident) => {
        $crate::data_section!($crate::map_name!($key))
    };
}

/// [`global_section!`] of a name literal (in this crate, where a `macro_export` macro cannot be
/// named by its path).
#[doc(hidden)]
#[macro_export]
macro_rules! data_section {
    ($name:expr) => {
        concat!(".data.", $name)
    };
}

macro_rules! name_consts {
    ($($(#[doc = $doc:literal])* $key:ident),* $(,)?) => {
        $( $(#[doc = $doc])* pub const $key: &str = map_name!($key); )*
        /// Every name above, in declaration order.
        pub const ALL: &[&str] = &[$($key),*];
    };
}

name_consts! {
    /// [`crate::maps::Config`], one entry.
    CONFIG,
    /// [`crate::maps::PortTable`], one entry.
    PORTS,
    /// [`crate::maps::ModeState`], one entry.
    MODE,
    /// [`crate::maps::ReadyState`], one entry.
    READY,
    /// [`crate::maps::SynWindow`] per CPU.
    SYN_WINDOW,
    /// Listener refresh stamps, [`crate::maps::refresh_slot`].
    REFRESH,
    /// [`crate::maps::Counter`] per reason, per CPU.
    VERDICTS,
    /// Event counts per CPU.
    EVENTS,
    /// The recently-closed table, [`crate::maps::closing_entry`].
    CLOSING,
    /// [`crate::policy::Policy`], one entry.
    POLICY,
    ALLOW_V4,
    ALLOW_V6,
    BLOCK_V4,
    BLOCK_V6,
    /// [`crate::policy::SourceState`] per source.
    SOURCES,
    /// [`crate::policy::ReflectState`] per destination prefix.
    REFLECT,
    /// Monitor mode's would-be verdicts, same layout as [`VERDICTS`].
    MONITOR,
    /// [`crate::policy::FloodEvent`] ring buffer.
    FLOOD_EVENTS,
    /// SYNs per protected port, per CPU.
    PORT_SYNS,
    /// [`crate::reqsk::CookieSecret`], one entry: own cookies' key (pinned like the others, so
    /// that a take-over keeps it; bpffs pins are the owner's only).
    COOKIE_SECRET,
    /// Program array: entry 0 is the XDP program `synguard_own_xdp`, which `synguard` tail-calls
    /// for own-cookie SYNs. "_MB": it holds multi-buffer programs (`xdp.frags`). A program
    /// array takes only programs of the kind it first held (`bpf_prog_map_compatible`), so the
    /// earlier builds' `SG_OWN_PROG`, which held single-buffer ones, cannot serve these: a
    /// take-over from such a build leaves that pin to the running program until the new one is
    /// attached (`pins::retire`), then removes it.
    OWN_PROG,
    /// Per CPU: the parsed packet, the hand-over to `synguard_own_xdp`, the reply being built,
    /// and the programs' clocks ([`crate::tick::TickClock`], [`crate::tai::TaiOffset`]) (never
    /// read by the loader).
    WORKSPACE,
    /// The recently-closed table's filter, [`crate::maps::closing_filter_slot`].
    CLOSING_FILTER,
    /// The connection table's stamps, [`crate::conns::conn_slot`].
    CONNS,
    /// [`crate::conns::ConnsState`], one entry.
    CONNS_STATE,
    /// Per CPU: the 4-tuple hashes of the own-cookie handshakes whose final ACK this CPU
    /// passed marked, by [`crate::conns::handshake_cpu_slot`] (never read by the loader).
    HANDSHAKES,
    /// The connection table's filter, [`crate::conns::conn_filter_slot`].
    CONNS_FILTER,
    /// The main routing table's IPv4 routes for the reverse-path check, by prefix: an
    /// `RP_ROUTE_*` kind each ([`crate::maps::reverse_path_ok`]).
    RP_V4,
    /// The host's own IPv4 addresses and local prefixes where [`CONFIG`]'s list cannot hold
    /// them ([`crate::maps::LOCAL_IN_MAP`]).
    LOCAL_V4,
    /// The same for IPv6.
    LOCAL_V6,
    /// Listeners bound to particular addresses, for ports with a `PORT_BOUND_ONLY_*` bit
    /// ([`crate::maps::BoundKey`]).
    BOUND,
}

/// The maps the programs address directly rather than look up (`synguard-ebpf`'s `Global`):
/// one-entry arrays read on every packet's way, each in its own data section
/// ([`global_section!`]), paired with that section's name. They are pinned under their plain
/// names like every other map and, but for [`PORTS`], with the kernel layout they always had
/// (an array of one entry, flags 0), so a take-over reuses an earlier build's pin of them as it
/// is. The port table was an array of an entry per port; a take-over from such a build
/// replaces its pin (it holds no state: every start writes it whole).
pub const GLOBALS: &[(&str, &str)] = &[
    (CONFIG, data_section!(map_name!(CONFIG))),
    (PORTS, data_section!(map_name!(PORTS))),
    (POLICY, data_section!(map_name!(POLICY))),
    (COOKIE_SECRET, data_section!(map_name!(COOKIE_SECRET))),
    (MODE, data_section!(map_name!(MODE))),
    (READY, data_section!(map_name!(READY))),
    (CONNS_STATE, data_section!(map_name!(CONNS_STATE))),
];

/// The name aya knows the map `name` by in a loaded object: its data section's for a map in
/// [`GLOBALS`], else `name` itself.
pub fn object_name(name: &str) -> &str {
    GLOBALS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(name, |(_, section)| section)
}

/// The map name (and pin name) of a map aya knows as `object_name`; None for a data section
/// that is not one of [`GLOBALS`] (constants, which are never pinned).
pub fn pin_name(object_name: &str) -> Option<&str> {
    match GLOBALS.iter().find(|(_, s)| *s == object_name) {
        Some((name, _)) => Some(name),
        None if object_name.starts_with('.') => None,
        None => Some(object_name),
    }
}

/// Maps of the lab's own programs (`synguard-ebpf/src/bin/lab.rs`).
pub mod lab {
    name_consts! {
        /// [`crate::lab::Template`], one entry.
        LAB_TEMPLATE,
        /// The program `lab_restore` tail-calls.
        LAB_TARGET,
        /// [`crate::lab::GenConfig`], one entry.
        LAB_GEN,
        /// `lab_gen`'s per-CPU frame counter.
        LAB_GEN_SEQ,
        /// The connection table of the synguard program under test (its pinned [`super::CONNS`]
        /// map, shared through `map_pin_path`), where `lab_restore` empties
        /// [`crate::lab::Template::forget_slot`].
        LAB_CONNS,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique_and_prefixed() {
        for (i, a) in super::ALL.iter().enumerate() {
            assert!(a.starts_with("SG_"), "{a}");
            assert!(!super::ALL[i + 1..].contains(a), "{a} twice");
        }
    }

    #[test]
    fn a_global_is_known_by_its_section_in_the_object_and_by_its_name_in_a_pin() {
        use super::*;
        assert_eq!(object_name(CONFIG), ".data.SG_CONFIG");
        assert_eq!(pin_name(".data.SG_CONFIG"), Some(CONFIG));
        assert_eq!(object_name(VERDICTS), VERDICTS);
        assert_eq!(pin_name(VERDICTS), Some(VERDICTS));
        assert_eq!(pin_name(".rodata"), None);
        for (name, _) in GLOBALS {
            assert!(ALL.contains(name), "{name}");
            assert_eq!(pin_name(object_name(name)), Some(*name));
        }
    }
}
