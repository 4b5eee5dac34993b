//! The run configuration, the bottom layer: one schema for the flags of `run` and the keys of
//! the TOML file (`settings`), the file itself (`file`), merged and validated once into a
//! [`RunConfig`] (`validate`), and the values they are made of (`kinds`, `cidr`). Imports
//! nothing else of the crate.

pub mod cidr;
pub mod file;
pub mod kinds;
pub mod settings;
pub mod validate;

pub use cidr::{Cidr, CidrError, Limits, ListKind};
pub use file::ConfigFileError;
pub use kinds::{CookieMode, Cookies, LogFormat, ModeArg, OwnTc, XdpAttach, XdpModeArg};
pub use settings::{Ports, RunArgs, Settings};
pub use validate::{ConfigError, RunConfig, parse_ports, validate_iface};

/// Where instances keep their lock, run-info and flood-history files.
pub const DEFAULT_RUN_DIR: &str = "/run/synguard";
/// Where instances pin their state, one directory per interface.
pub const DEFAULT_PIN_BASE: &str = "/sys/fs/bpf/synguard";
/// Where `run` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/synguard/synguard.toml";
