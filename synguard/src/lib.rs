//! synguard's loader: attaches the XDP program, configures it through maps, reads its counters.
pub mod objects;
