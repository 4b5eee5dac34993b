//! Command-line interface: what the user may type, nothing more. Validation that goes beyond
//! "is this a number" lives in `config`, so it can be unit-tested without clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// SYN-flood protection in XDP: answers SYNs with kernel-compatible SYN cookies and drops bogus
/// ACKs before they reach the TCP stack.
#[derive(Debug, Parser)]
#[command(name = "synguard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to interfaces and protect TCP ports until SIGINT/SIGTERM (detach) or SIGUSR1
    /// (hand over: exit, leaving the program attached for the next `run` to adopt).
    Run(Box<RunArgs>),
    /// Show the counters of a running instance.
    Stats(StatsArgs),
    /// What synguard does on each interface: attached, modes, ports, thresholds, kernel settings.
    Status(StatusArgs),
    /// Remove everything synguard left on an interface (after kill -9 or a hand-over) and
    /// restore the kernel settings it changed.
    Detach(DetachArgs),
    /// Check or print the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Re-read the configuration file of the running synguard and apply it through its maps
    /// (same as SIGHUP): no re-attach, no lost counters.
    Reload(ReloadArgs),
    /// Prefixes that bypass limits and cookies.
    #[command(subcommand)]
    Allow(ListOp),
    /// Prefixes dropped first.
    #[command(subcommand)]
    Block(ListOp),
    /// The heaviest sources now, and the blocked ones with the time left (needs --source-rate).
    Top(TopArgs),
    /// Check the host's SYN-flood tuning (syncookies, backlogs, SYN-ACK retries, listener
    /// backlogs, XDP driver support, kernel features) and recommend values.
    Doctor(DoctorArgs),
    /// Write the man pages or a shell completion script (for packaging).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write synguard.8 and one page per subcommand into a directory.
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
    /// Print the completion script for a shell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[arg(long, value_name = "DIR", default_value = crate::loader::DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

/// Where a list or `top` command acts.
#[derive(Debug, Args)]
pub struct Target {
    /// Only this interface [default: every interface synguard guards].
    #[arg(long)]
    pub iface: Option<String>,
    #[arg(long, value_name = "DIR", default_value = crate::pin::DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ListOp {
    /// Add a prefix (CIDR, e.g. 192.0.2.0/24 or 2001:db8::/32); effective on the next packet.
    Add {
        cidr: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a prefix, exactly as listed.
    Del {
        cidr: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print the list.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub target: Target,
    /// How many of the heaviest sources.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Interface whose driver to check for native XDP.
    #[arg(long)]
    pub iface: Option<String>,
    /// Protected ports whose listener backlogs to check (e.g. 22,80,443).
    #[arg(long)]
    pub ports: Option<String>,
    /// Set the recommended sysctl values (in this network namespace).
    #[arg(long)]
    pub apply: bool,
    #[arg(long)]
    pub json: bool,
}

/// When XDP answers SYNs with cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// Only while the SYN rate to protected ports is above --syn-threshold.
    Auto,
    /// Every SYN to a protected port.
    Always,
}

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// In the driver (fastest); fails on drivers without XDP support.
    Native,
    /// Generic XDP in the network stack; works everywhere, slower.
    Skb,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line (for journald/log shippers).
    Json,
}

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
    #[arg(long, value_name = "DIR", default_value = crate::pin::DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    /// Directory for the lock and run-info files.
    #[arg(long, value_name = "DIR", default_value = crate::loader::DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this interface [default: every interface synguard has state for].
    #[arg(long)]
    pub iface: Option<String>,
    /// One JSON object: {"interfaces": [...]}.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "DIR", default_value = crate::pin::DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = crate::loader::DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Interface to clean up (repeat for several).
    #[arg(long = "iface", value_name = "IFACE", required = true)]
    pub ifaces: Vec<String>,
    #[arg(long, value_name = "DIR", default_value = crate::pin::DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = crate::loader::DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file; exits non-zero with the problem named.
    Validate {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the configuration in effect (file, then these flags on top) as TOML.
    Dump(Box<RunArgs>),
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Interface of the instance [default: the only running one].
    #[arg(long)]
    pub iface: Option<String>,
    /// Seconds between refreshes.
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub interval: f64,
    /// One JSON object per line per refresh.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many refreshes (the first one is printed at once, with zero rates).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Base directory of pinned maps.
    #[arg(long, value_name = "DIR", default_value = crate::pin::DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults() {
        let cli =
            Cli::try_parse_from(["synguard", "run", "--iface", "a", "--ports", "80"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.ifaces, ["a"]);
        assert_eq!(r.ports.as_deref(), Some("80"));
        // Unset flags stay unset, so the configuration file can supply them.
        assert_eq!((r.mode, r.syn_threshold, r.hold), (None, None, None));
        assert_eq!(r.config, None);
    }

    #[test]
    fn iface_repeats() {
        let cli = Cli::try_parse_from([
            "synguard",
            "run",
            "--iface",
            "a",
            "--iface",
            "b",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.ifaces, ["a", "b"]);
        assert_eq!(r.log_format, Some(LogFormat::Json));
    }

    #[test]
    fn stats_options() {
        let cli = Cli::try_parse_from(["synguard", "stats", "--json", "--count", "1"]).unwrap();
        let Command::Stats(s) = cli.command else {
            panic!("not stats")
        };
        assert!(s.json);
        assert_eq!(s.count, Some(1));
        assert_eq!(s.interval, 1.0);
        assert_eq!(s.iface, None);
    }
}
