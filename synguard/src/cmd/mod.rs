//! The command line: what the user may type (one file per subcommand, each with its flags) and
//! the one place that runs the chosen command. Validation that goes beyond "is this a number"
//! lives in `config`, so it can be unit-tested without clap.

pub mod config;
pub mod detach;
pub mod doctor;
pub mod generate;
pub mod lists;
pub mod logging;
pub mod reload;
pub mod run;
pub mod stats;
pub mod status;

use clap::{Parser, Subcommand};

pub use self::{
    config::ConfigCommand,
    detach::DetachArgs,
    doctor::DoctorArgs,
    generate::GenerateCommand,
    lists::{ListOp, Target, TopArgs},
    reload::ReloadArgs,
    stats::StatsArgs,
    status::StatusArgs,
};
pub use crate::config::RunArgs;
use crate::{
    config::{CidrError, ConfigError, ConfigFileError, ListKind, LogFormat},
    host::privilege,
};

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
    /// Re-read the configuration file of the running synguard and apply it through its maps: no
    /// re-attach, no lost counters. Waits for the answer; exits 1 when it was refused.
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
    /// backlogs, XDP driver support, kernel features) and recommend values; exits 1 when a
    /// check warns.
    Doctor(DoctorArgs),
    /// Write the man pages or a shell completion script (for packaging).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

/// Exit status of a usage error: the command line or the configuration is wrong, nothing was
/// tried (clap's own errors exit with it too).
pub const EXIT_USAGE: i32 = 2;
/// Exit status of a runtime error: the command was understood but failed (a file or an
/// interface it names does not exist, no privilege, the kernel refused).
pub const EXIT_FAILURE: i32 = 1;

/// The exit status for an error `dispatch` returned.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    let usage = e.chain().any(|c| {
        c.downcast_ref::<ConfigFileError>()
            .is_some_and(|f| !matches!(f, ConfigFileError::Read { .. }))
            || c.is::<ConfigError>()
            || c.is::<CidrError>()
    });
    if usage { EXIT_USAGE } else { EXIT_FAILURE }
}

/// Runs the command; returns the process exit status.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Run(args) = &cli.command {
        return run::run(args).await;
    }
    logging::init(LogFormat::Human);
    if let Some(what) = needs_bpf(&cli.command) {
        privilege::require_bpf(&format!("synguard {what}"))?;
    }
    let done = |r: anyhow::Result<()>| r.map(|()| 0);
    match &cli.command {
        Command::Run(_) => unreachable!("handled above"),
        Command::Stats(args) => done(stats::stats(args).await),
        Command::Status(args) => done(status::status(args)),
        Command::Detach(args) => done(detach::detach(args)),
        Command::Doctor(args) => doctor::doctor(args),
        Command::Reload(args) => reload::reload(args),
        Command::Allow(op) => done(lists::list_command(ListKind::Allow, op)),
        Command::Block(op) => done(lists::list_command(ListKind::Block, op)),
        Command::Top(args) => done(lists::top(args)),
        Command::Config(command) => done(config::config(command)),
        Command::Generate(what) => done(generate::run(what)),
    }
}

/// The commands that read or write pinned maps (or signal a root process), by name.
fn needs_bpf(command: &Command) -> Option<&'static str> {
    match command {
        Command::Stats(_) => Some("stats"),
        Command::Status(_) => Some("status"),
        Command::Detach(_) => Some("detach"),
        Command::Reload(_) => Some("reload"),
        Command::Allow(_) => Some("allow"),
        Command::Block(_) => Some("block"),
        Command::Top(_) => Some("top"),
        Command::Run(_) | Command::Config(_) | Command::Doctor(_) | Command::Generate(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogFormat;
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
        assert_eq!(r.ports, Some(crate::config::Ports::Flag("80".into())));
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
