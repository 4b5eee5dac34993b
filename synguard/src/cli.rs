//! Command-line interface: what the user may type, nothing more. Validation that goes beyond
//! "is this a number" lives in `config`, so it can be unit-tested without clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Attach to an interface and protect TCP ports until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Show the counters of a running instance.
    Stats(StatsArgs),
}

/// When XDP answers SYNs with cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Only while the SYN rate to protected ports is above --syn-threshold.
    Auto,
    /// Every SYN to a protected port.
    Always,
}

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// In the driver (fastest); fails on drivers without XDP support.
    Native,
    /// Generic XDP in the network stack; works everywhere, slower.
    Skb,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to protect (as seen in the current network namespace).
    #[arg(long)]
    pub iface: String,
    /// TCP ports to protect, separated by commas (e.g. 22,80,443).
    #[arg(long)]
    pub ports: String,
    /// Cookie mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Auto mode: SYNs per second (to protected ports, all CPUs) that turn cookies on.
    #[arg(long, value_name = "PPS", default_value_t = 1000)]
    pub syn_threshold: u32,
    /// Auto mode: cookies turn off once the rate stayed below this for --hold seconds
    /// [default: half of --syn-threshold].
    #[arg(long, value_name = "PPS")]
    pub syn_off_threshold: Option<u32>,
    /// Auto mode: seconds the rate must stay below --syn-off-threshold before cookies turn off.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub hold: f64,
    /// XDP attach mode [default: native, falling back to skb].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpModeArg>,
    /// Window scale the SYN-ACK advertises [default: the kernel's, from tcp_rmem/rmem_max].
    #[arg(long, value_name = "N")]
    pub wscale: Option<u8>,
    /// Base directory for pinned maps (one subdirectory per interface).
    #[arg(long, value_name = "DIR", default_value = crate::loader::DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    /// Directory for the lock and run-info files.
    #[arg(long, value_name = "DIR", default_value = crate::loader::DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
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
    #[arg(long, value_name = "DIR", default_value = crate::loader::DEFAULT_PIN_BASE, hide = true)]
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
        assert_eq!(r.mode, ModeArg::Auto);
        assert_eq!(r.syn_threshold, 1000);
        assert_eq!(r.syn_off_threshold, None);
        assert_eq!(r.hold, 10.0);
        assert_eq!(r.xdp_mode, None);
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
