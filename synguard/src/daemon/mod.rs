//! The long-running `synguard run`: one [`instance::Instance`] per interface owned by the
//! [`guard::Guard`], the cookie-mode controller (`mode`, with its kernel side in
//! `cookie_backend`), flood events, metrics (`metrics` serves what `exposition` renders),
//! reload, the programs' logs, the NIC check before attaching (`nic_gate`), the connection
//! table's pass (`conns`), and the run loop.

pub mod conns;
pub mod control;
pub mod cookie_backend;
pub mod events;
pub mod exposition;
pub mod guard;
pub mod instance;
pub mod logs;
pub mod metrics;
pub mod mode;
pub mod nic_gate;
pub mod own_cookies;
pub mod prepare;
pub mod reload;
pub mod run;
pub mod takeover;
