//! The XDP program as the user side sees it: the embedded object (`objects`), loading it
//! (`load`), what it is told (`config_map`), its pinned link (`link`) and pins (`pins`), typed
//! access to pinned maps (`maps`), its counters (`counters`), its policy maps (`policy`), and
//! explaining the kernel's refusals (`diagnose`, `error`).

pub mod config_map;
pub mod counters;
pub mod diagnose;
pub mod error;
pub mod kfunc;
pub mod link;
pub mod load;
pub mod maps;
pub mod objects;
pub mod own;
pub mod pins;
pub mod policy;
