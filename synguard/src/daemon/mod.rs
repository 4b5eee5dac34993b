//! The long-running `synguard run`: one [`instance::Instance`] per interface owned by the
//! [`guard::Guard`], the cookie-mode controller (`mode`, with its kernel side in
//! `cookie_backend`), flood events, metrics, reload, the programs' logs, and the run loop.

pub mod cookie_backend;
pub mod events;
pub mod guard;
pub mod instance;
pub mod logs;
pub mod metrics;
pub mod mode;
pub mod own_cookies;
pub mod reload;
pub mod run;
