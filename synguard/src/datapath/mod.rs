//! The XDP program as the user side sees it: the embedded object (`objects`) and what is
//! rewritten in it before loading (`kfunc`, `globals`), loading it (`load`), what it is told (`config_map`), its pinned link (`link`) and pins (`pins`), typed
//! access to pinned maps (`maps`), what it enforces (`enforced`), its counters (`counters`) and
//! SYN rate (`rate`), its policy maps (`policy`), what the NIC needs for XDP_TX (`nic_check`),
//! the connection table's sock_ops program and stamps (`conns`), and explaining the kernel's
//! refusals (`diagnose`, `error`); `spoil` makes a program unverifiable for a fault-injection
//! test.

pub mod bound;
pub mod config_map;
pub mod conns;
pub mod counters;
pub mod diagnose;
pub mod enforced;
pub mod error;
pub mod globals;
pub mod kfunc;
pub mod link;
pub mod load;
pub mod local_addrs;
pub mod maps;
pub mod nic_check;
pub mod objects;
pub mod own;
pub mod pins;
pub mod policy;
pub mod ports;
pub mod rate;
pub mod reverse_path;
pub mod spoil;
