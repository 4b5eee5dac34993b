//! What `run` (and `config dump`) can be told on the command line.

use std::path::PathBuf;

use clap::Args;

use crate::config::{Cookies, DEFAULT_PIN_BASE, DEFAULT_RUN_DIR, LogFormat, ModeArg, XdpModeArg};

/// Everything `run` can be told. Every setting is optional here: unset ones come from the
/// configuration file, then from the defaults (see `config_file`).
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Configuration file [default: /etc/synguard/synguard.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface to protect (as seen in the current network namespace); repeat for several.
    #[arg(long = "iface", value_name = "IFACE")]
    pub ifaces: Vec<String>,
    /// TCP ports to protect, separated by commas (e.g. 22,80,443).
    #[arg(long)]
    pub ports: Option<String>,
    /// Cookie mode [default: auto].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Auto mode: SYNs per second (to protected ports, all CPUs) that turn cookies on
    /// [default: 1000].
    #[arg(long, value_name = "PPS")]
    pub syn_threshold: Option<u32>,
    /// Auto mode: cookies turn off once the rate stayed below this for --hold seconds
    /// [default: half of --syn-threshold].
    #[arg(long, value_name = "PPS")]
    pub syn_off_threshold: Option<u32>,
    /// Auto mode: seconds the rate must stay below --syn-off-threshold before cookies turn off
    /// [default: 10].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub hold: Option<f64>,
    /// XDP attach mode [default: native, falling back to skb].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpModeArg>,
    /// Window scale the SYN-ACK advertises [default: the kernel's, from tcp_rmem/rmem_max].
    #[arg(long, value_name = "N")]
    pub wscale: Option<u8>,
    /// Whose SYN cookies [default: auto: own where the kernel can, else the kernel's].
    #[arg(long, value_enum)]
    pub cookies: Option<Cookies>,
    /// Own cookies: read the key from this file (32 hex digits, mode 600) instead of a random
    /// one per start, so that servers sharing it accept each other's cookies.
    #[arg(long, value_name = "FILE")]
    pub cookie_secret_file: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9724) [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Log format [default: human]; levels come from RUST_LOG (default info).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// SYNs per second one source (IPv4 address, IPv6 /64) may send; excess is dropped
    /// [default: unlimited].
    #[arg(long, value_name = "PPS")]
    pub source_rate: Option<u64>,
    /// SYNs a source may send at once after a quiet time [default: one second's worth].
    #[arg(long, value_name = "N")]
    pub source_burst: Option<u64>,
    /// Seconds a source over its rate is then blocked outright [default: 0, only the excess].
    #[arg(long, value_name = "SECONDS")]
    pub source_block: Option<u64>,
    /// SYN-ACKs per second to one destination /24 (IPv6 /48), against reflection
    /// [default: no cap].
    #[arg(long, value_name = "PPS")]
    pub reflect_cap: Option<u64>,
    /// SYN-ACKs to one destination prefix at once [default: one second's worth].
    #[arg(long, value_name = "N")]
    pub reflect_burst: Option<u64>,
    /// Decide and count everything, but pass every packet (a first deployment).
    #[arg(long)]
    pub monitor: bool,
    /// Prefix that bypasses limits and cookies (repeat for several).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    /// Prefix dropped first (repeat for several).
    #[arg(long, value_name = "CIDR")]
    pub block: Vec<String>,
    /// Base directory for pinned state (one subdirectory per interface).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    /// Directory for the lock and run-info files.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}
