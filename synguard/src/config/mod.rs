//! The run configuration, the bottom layer: the flags of `run` (`flags`) and the TOML file
//! (`file`) merged and validated once into a [`RunConfig`] (`validate`), and the values they are
//! made of (`kinds`, `cidr`). Imports nothing else of the crate.

pub mod cidr;
pub mod file;
pub mod flags;
pub mod kinds;
pub mod validate;

pub use cidr::{Cidr, CidrError, Limits, ListKind};
pub use file::ConfigFileError;
pub use flags::RunArgs;
pub use kinds::{CookieMode, Cookies, LogFormat, ModeArg, XdpAttach, XdpModeArg};
pub use validate::{ConfigError, RunConfig, Settings, parse_ports, validate_iface};

/// Where instances keep their lock, run-info and flood-history files.
pub const DEFAULT_RUN_DIR: &str = "/run/synguard";
/// Where instances pin their state, one directory per interface.
pub const DEFAULT_PIN_BASE: &str = "/sys/fs/bpf/synguard";
/// Where `run` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/synguard/synguard.toml";
