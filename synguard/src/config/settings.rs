//! The one schema of `run`'s settings: each is a flag (clap) and a key of the configuration file
//! (serde) on the same field, with the rule that merges the two next to it. Adding a setting is
//! one line of this table (plus what it means, in `validate`, and its test).
//!
//! Every setting is optional here: the flags given win over the file's keys (`over`), then
//! [`RunConfig::from_settings`](crate::config::RunConfig::from_settings) applies the defaults and
//! the rules, once.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{
    Cookies, DEFAULT_PIN_BASE, DEFAULT_RUN_DIR, LogFormat, ModeArg, OwnTc, XdpModeArg,
};

/// How a flag and the file's key combine.
mod merge {
    /// The flag if given, else the key.
    pub fn first<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
        flag.or(file)
    }
    /// The flag's list if given, else the key's.
    pub fn replace<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
        if flag.is_empty() { file } else { flag }
    }
    /// The key's list, then the flag's.
    pub fn join<T>(flag: Vec<T>, mut file: Vec<T>) -> Vec<T> {
        file.extend(flag);
        file
    }
    /// Only a flag (not a key of the file).
    pub fn flag_only<T>(flag: T, _file: T) -> T {
        flag
    }
}

/// The ports as given: text from `--ports 22,80`, numbers from `ports = [22, 80]` (i64, not u16:
/// so that 70000 or -1 get our message naming the key and the range).
#[derive(Clone, Debug, PartialEq)]
pub enum Ports {
    Flag(String),
    File(Vec<i64>),
}

impl std::str::FromStr for Ports {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Ports::Flag(s.to_string()))
    }
}

impl Serialize for Ports {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ports::Flag(text) => text.serialize(s),
            Ports::File(list) => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<i64>::deserialize(d).map(Ports::File)
    }
}

macro_rules! settings {
    ($(#[$attr:meta])* pub struct $name:ident {
        $($(#[$fattr:meta])* pub $field:ident: $ty:ty => $merge:ident,)*
    }) => {
        $(#[$attr])*
        pub struct $name {
            $($(#[$fattr])* pub $field: $ty,)*
        }

        impl $name {
            /// These settings (the flags) over `file`'s.
            pub fn over(self, file: $name) -> $name {
                $name {
                    $($field: merge::$merge(self.$field, file.$field),)*
                }
            }
        }
    };
}

settings! {
    /// Everything `run` can be told, on the command line or in the configuration file.
    #[derive(Clone, Debug, Default, PartialEq, Args, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Settings {
        /// Configuration file [default: /etc/synguard/synguard.toml when it exists].
        #[arg(long, value_name = "FILE")]
        #[serde(skip)]
        pub config: Option<PathBuf> => flag_only,
        /// Interface to protect (as seen in the current network namespace); repeat for several.
        #[arg(long = "iface", value_name = "IFACE")]
        #[serde(rename = "interfaces", default, skip_serializing_if = "Vec::is_empty")]
        pub ifaces: Vec<String> => replace,
        /// TCP ports to protect, separated by commas (e.g. 22,80,443).
        #[arg(long)]
        pub ports: Option<Ports> => first,
        /// Cookie mode [default: auto].
        #[arg(long, value_enum)]
        pub mode: Option<ModeArg> => first,
        /// Auto mode: SYNs per second (to protected ports, all CPUs) that turn cookies on
        /// [default: 1000].
        #[arg(long, value_name = "PPS")]
        pub syn_threshold: Option<u32> => first,
        /// Auto mode: cookies turn off once the rate stayed below this for --hold seconds
        /// [default: half of --syn-threshold].
        #[arg(long, value_name = "PPS")]
        pub syn_off_threshold: Option<u32> => first,
        /// Auto mode: seconds the rate must stay below --syn-off-threshold before cookies turn
        /// off [default: 10].
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
        pub hold: Option<f64> => first,
        /// XDP attach mode [default: native, falling back to skb].
        #[arg(long, value_enum)]
        pub xdp_mode: Option<XdpModeArg> => first,
        /// Window scale the SYN-ACK advertises [default: the kernel's, from tcp_rmem/rmem_max].
        #[arg(long, value_name = "N")]
        pub wscale: Option<u8> => first,
        /// Whose SYN cookies [default: auto: own where the kernel can, else the kernel's].
        #[arg(long, value_enum)]
        pub cookies: Option<Cookies> => first,
        /// Own cookies: read the key from this file (32 hex digits, mode 600) instead of a random
        /// one per start, so that servers sharing it accept each other's cookies.
        #[arg(long, value_name = "FILE")]
        pub cookie_secret_file: Option<PathBuf> => first,
        /// Own cookies' TC program: auto (reads the XDP program's mark, switches to check on a
        /// driver without XDP metadata) or check (checks every pure ACK's cookie again, from
        /// the start) [default: auto].
        #[arg(long, value_enum)]
        pub own_tc: Option<OwnTc> => first,
        /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9724) [default: off].
        #[arg(long, value_name = "ADDR")]
        pub metrics_addr: Option<String> => first,
        /// Log format [default: human]; levels come from RUST_LOG (default info).
        #[arg(long, value_enum)]
        pub log_format: Option<LogFormat> => first,
        /// SYNs per second one source (IPv4 address, IPv6 /64) may send; excess is dropped
        /// [default: unlimited].
        #[arg(long, value_name = "PPS")]
        pub source_rate: Option<u64> => first,
        /// SYNs a source may send at once after a quiet time [default: one second's worth].
        #[arg(long, value_name = "N")]
        pub source_burst: Option<u64> => first,
        /// Seconds a source over its rate is then blocked outright [default: 0, only the
        /// excess].
        #[arg(long, value_name = "SECONDS")]
        pub source_block: Option<u64> => first,
        /// SYN-ACKs per second to one destination /24 (IPv6 /48), against reflection
        /// [default: no cap].
        #[arg(long, value_name = "PPS")]
        pub reflect_cap: Option<u64> => first,
        /// SYN-ACKs to one destination prefix at once [default: one second's worth].
        #[arg(long, value_name = "N")]
        pub reflect_burst: Option<u64> => first,
        /// Decide and count everything, but pass every packet (a first deployment).
        #[arg(long, num_args = 0, default_missing_value = "true")]
        pub monitor: Option<bool> => first,
        /// Attach even where the NIC check refuses (virtio-net with too few spare queue pairs
        /// for XDP_TX, see docs/virtio-net.md); its findings are still logged.
        #[arg(long, num_args = 0, default_missing_value = "true")]
        pub ignore_nic_checks: Option<bool> => first,
        /// Prefix that bypasses limits and cookies (repeat for several).
        #[arg(long, value_name = "CIDR")]
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub allow: Vec<String> => join,
        /// Prefix dropped first (repeat for several).
        #[arg(long, value_name = "CIDR")]
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub block: Vec<String> => join,
        /// Base directory for pinned state (one subdirectory per interface).
        #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
        #[serde(skip)]
        pub pin_base: PathBuf => flag_only,
        /// Directory for the lock and run-info files.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
        #[serde(skip)]
        pub run_dir: PathBuf => flag_only,
    }
}

/// The flags of `run` are the settings.
pub type RunArgs = Settings;

/// What a key of the configuration file means: its flag's help, the one description of each
/// setting. `None` for a key that is not a setting.
pub fn key_meaning(key: &str) -> Option<String> {
    // Keys are the field names, except where serde renames them.
    let field = match key {
        "interfaces" => "ifaces",
        k => k,
    };
    let cmd = <Settings as clap::Args>::augment_args(clap::Command::new("synguard"));
    cmd.get_arguments()
        .find(|a| a.get_id() == field)
        .and_then(|a| a.get_help())
        .map(|h| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        s: Settings,
    }

    fn flags(args: &[&str]) -> Settings {
        Cli::try_parse_from(std::iter::once("synguard").chain(args.iter().copied()))
            .unwrap()
            .s
    }

    #[test]
    fn flags_win_lists_join_or_replace() {
        let file: Settings = toml::from_str(
            "interfaces = [\"eth0\"]\nports = [80]\nhold = 3.0\nmonitor = true\n\
             allow = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        let s = flags(&["--iface", "veth9", "--hold", "1", "--allow", "192.0.2.0/24"]).over(file);
        assert_eq!(
            s.ifaces,
            ["veth9"],
            "the flag's interfaces replace the file's"
        );
        assert_eq!(
            s.ports,
            Some(Ports::File(vec![80])),
            "unset flag: the file's key"
        );
        assert_eq!(s.hold, Some(1.0), "the flag wins");
        assert_eq!(s.monitor, Some(true));
        assert_eq!(s.allow, ["10.0.0.0/8", "192.0.2.0/24"], "file, then flags");
        assert_eq!(s.pin_base, PathBuf::from(DEFAULT_PIN_BASE), "flag-only");
    }

    #[test]
    fn a_switch_is_unset_until_given() {
        assert_eq!(flags(&[]).monitor, None);
        assert_eq!(flags(&["--monitor"]).monitor, Some(true));
        assert!(Cli::try_parse_from(["synguard", "--monitor", "false"]).is_err());
    }

    #[test]
    fn flag_only_settings_are_not_keys() {
        for key in ["config = \"x\"", "pin_base = \"/x\"", "run_dir = \"/x\""] {
            let e = toml::from_str::<Settings>(key).unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{key}: {e}");
        }
    }
}
