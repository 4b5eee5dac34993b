//! The TOML configuration file: reading it, merging the command line over it, and printing the
//! result. Unknown keys and values of the wrong type are refused by serde with the key named;
//! values of the right type but out of range are refused here or in `config`, also naming the key.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{
    self, ConfigError, Cookies, DEFAULT_CONFIG, DEFAULT_PIN_BASE, DEFAULT_RUN_DIR, LogFormat,
    ModeArg, RunArgs, RunConfig, Settings, XdpModeArg,
};

#[derive(Debug, Error)]
pub enum ConfigFileError {
    #[error("cannot read configuration file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: ports: {value} is outside 1..65535", path.display())]
    Port { path: PathBuf, value: i64 },
    #[error("{}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error(transparent)]
    Args(#[from] ConfigError),
}

/// The file's keys. Every key is optional; flags override them (the allow and block lists of the
/// file and the flags are joined).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// i64, not u16: so that 70000 or -1 get our message naming the key and the range.
    pub ports: Option<Vec<i64>>,
    pub mode: Option<ModeArg>,
    pub syn_threshold: Option<u32>,
    pub syn_off_threshold: Option<u32>,
    /// Seconds.
    pub hold: Option<f64>,
    pub xdp_mode: Option<XdpModeArg>,
    pub wscale: Option<u8>,
    pub cookies: Option<Cookies>,
    pub cookie_secret_file: Option<PathBuf>,
    pub metrics_addr: Option<String>,
    pub log_format: Option<LogFormat>,
    pub source_rate: Option<u64>,
    pub source_burst: Option<u64>,
    /// Seconds.
    pub source_block: Option<u64>,
    pub reflect_cap: Option<u64>,
    pub reflect_burst: Option<u64>,
    pub monitor: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block: Vec<String>,
}

/// Parses the text of a configuration file. `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigFileError> {
    toml::from_str(text).map_err(|e| ConfigFileError::Parse {
        path: path.to_path_buf(),
        // toml's message quotes the offending line and names the key or the expected type;
        // its trailing newline would only split our one-line error.
        message: e.to_string().trim_end().to_string(),
    })
}

pub fn load(path: &Path) -> Result<FileConfig, ConfigFileError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// The file `run` reads: `--config`, else the default when it exists, else none.
fn chosen_file(args: &RunArgs) -> Option<PathBuf> {
    match &args.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    }
}

fn file_ports(path: &Path, ports: &[i64]) -> Result<Vec<u16>, ConfigFileError> {
    let mut out = ports
        .iter()
        .map(|&p| match u16::try_from(p) {
            Ok(v) if v != 0 => Ok(v),
            _ => Err(ConfigFileError::Port {
                path: path.to_path_buf(),
                value: p,
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Flags over file: a flag that was given wins, otherwise the file's key.
fn merge(args: &RunArgs, file: &FileConfig, path: &Path) -> Result<Settings, ConfigFileError> {
    let ports = match &args.ports {
        Some(text) => Some(config::parse_ports(text)?),
        None => file
            .ports
            .as_deref()
            .map(|p| file_ports(path, p))
            .transpose()?,
    };
    Ok(Settings {
        ifaces: if args.ifaces.is_empty() {
            file.interfaces.clone()
        } else {
            args.ifaces.clone()
        },
        ports,
        mode: args.mode.or(file.mode),
        syn_threshold: args.syn_threshold.or(file.syn_threshold),
        syn_off_threshold: args.syn_off_threshold.or(file.syn_off_threshold),
        hold: args.hold.or(file.hold),
        xdp_mode: args.xdp_mode.or(file.xdp_mode),
        wscale: args.wscale.or(file.wscale),
        cookies: args.cookies.or(file.cookies),
        cookie_secret_file: args
            .cookie_secret_file
            .clone()
            .or(file.cookie_secret_file.clone()),
        metrics_addr: args.metrics_addr.clone().or(file.metrics_addr.clone()),
        log_format: args.log_format.or(file.log_format),
        pin_base: args.pin_base.clone(),
        run_dir: args.run_dir.clone(),
        source_rate: args.source_rate.or(file.source_rate),
        source_burst: args.source_burst.or(file.source_burst),
        source_block: args.source_block.or(file.source_block),
        reflect_cap: args.reflect_cap.or(file.reflect_cap),
        reflect_burst: args.reflect_burst.or(file.reflect_burst),
        monitor: args.monitor || file.monitor.unwrap_or(false),
        allow: file.allow.iter().chain(&args.allow).cloned().collect(),
        block: file.block.iter().chain(&args.block).cloned().collect(),
    })
}

/// The configuration `run` uses: the file (if any) with the flags on top, validated.
pub fn resolve(args: &RunArgs) -> Result<RunConfig, ConfigFileError> {
    let (file, path) = match chosen_file(args) {
        Some(path) => (load(&path)?, path),
        None => (FileConfig::default(), PathBuf::from("(command line)")),
    };
    let settings = merge(args, &file, &path)?;
    RunConfig::from_settings(&settings).map_err(|source| {
        if args.config.is_some() || path.exists() {
            ConfigFileError::Invalid { path, source }
        } else {
            ConfigFileError::Args(source)
        }
    })
}

/// `synguard config validate FILE`: the file alone must make a complete configuration.
pub fn validate(path: &Path) -> Result<RunConfig, ConfigFileError> {
    resolve(&RunArgs {
        config: Some(path.to_path_buf()),
        pin_base: PathBuf::from(DEFAULT_PIN_BASE),
        run_dir: PathBuf::from(DEFAULT_RUN_DIR),
        ..Default::default()
    })
}

/// The configuration in effect, as a file that would produce it (every key spelled out).
pub fn dump(cfg: &RunConfig) -> String {
    let file = FileConfig {
        interfaces: cfg.ifaces.clone(),
        ports: Some(cfg.ports.iter().map(|&p| p as i64).collect()),
        mode: Some(match cfg.mode {
            config::CookieMode::Auto => ModeArg::Auto,
            config::CookieMode::Always => ModeArg::Always,
        }),
        syn_threshold: Some(cfg.syn_on_pps),
        syn_off_threshold: Some(cfg.syn_off_pps),
        hold: Some(cfg.hold.as_secs_f64()),
        xdp_mode: match cfg.xdp {
            config::XdpAttach::NativeThenSkb => None,
            config::XdpAttach::Native => Some(XdpModeArg::Native),
            config::XdpAttach::Skb => Some(XdpModeArg::Skb),
        },
        wscale: cfg.wscale,
        cookies: Some(cfg.cookies),
        cookie_secret_file: cfg.cookie_secret_file.clone(),
        metrics_addr: cfg.metrics_addr.map(|a| a.to_string()),
        log_format: Some(cfg.log_format),
        source_rate: Some(cfg.limits.source_rate),
        source_burst: Some(cfg.limits.source_burst),
        source_block: Some(cfg.limits.source_block_secs),
        reflect_cap: Some(cfg.limits.reflect_rate),
        reflect_burst: Some(cfg.limits.reflect_burst),
        monitor: Some(cfg.limits.monitor),
        allow: cfg.allow.iter().map(ToString::to_string).collect(),
        block: cfg.block.iter().map(ToString::to_string).collect(),
    };
    let mut text = toml::to_string(&file).expect("configuration serialises");
    if file.xdp_mode.is_none() {
        text.push_str("# xdp_mode unset: native, falling back to skb\n");
    }
    if file.wscale.is_none() {
        text.push_str("# wscale unset: the kernel's own, from tcp_rmem/rmem_max\n");
    }
    if file.cookie_secret_file.is_none() {
        text.push_str("# cookie_secret_file unset: own cookies use a random key per start\n");
    }
    if file.metrics_addr.is_none() {
        text.push_str("# metrics_addr unset: no metrics endpoint\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs {
            pin_base: PathBuf::from("/p"),
            run_dir: PathBuf::from("/r"),
            ..Default::default()
        }
    }

    fn file_err(text: &str) -> String {
        let path = Path::new("t.toml");
        match parse(path, text) {
            Err(e) => e.to_string(),
            Ok(file) => match merge(&args(), &file, path)
                .and_then(|s| RunConfig::from_settings(&s).map_err(ConfigFileError::Args))
            {
                Err(e) => e.to_string(),
                Ok(c) => panic!("accepted: {c:?}"),
            },
        }
    }

    #[test]
    fn example_config_is_valid_and_complete() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/synguard.toml"
        ));
        let file = load(path).unwrap();
        // Every key is documented, so every field is present in the example.
        let json = serde_json::to_value(&file).unwrap();
        for (key, value) in json.as_object().unwrap() {
            assert!(!value.is_null(), "examples/synguard.toml lacks {key}");
        }
        let cfg = RunConfig::from_settings(&merge(&args(), &file, path).unwrap()).unwrap();
        assert_eq!(cfg.metrics_addr.unwrap().ip().to_string(), "127.0.0.1");
    }

    #[test]
    fn bad_policy_values_name_the_key() {
        let base = "interfaces = [\"eth0\"]\nports = [80]\n";
        let e = file_err(&format!("{base}block = [\"198.51.100.1/24\"]\n"));
        assert!(e.contains("block") && e.contains("198.51.100.0/24"), "{e}");
        let e = file_err(&format!("{base}allow = [\"10.0.0.0/40\"]\n"));
        assert!(e.contains("allow") && e.contains("/40"), "{e}");
        let e = file_err(&format!("{base}allow = [\"somewhere\"]\n"));
        assert!(e.contains("expected ADDRESS[/PREFIX]"), "{e}");
        let e = file_err(&format!("{base}source_rate = 10\nsource_burst = 0\n"));
        assert!(
            e.contains("source_burst") && e.contains("source_rate"),
            "{e}"
        );
        let e = file_err(&format!("{base}source_rate = \"fast\"\n"));
        assert!(e.contains("source_rate"), "{e}");
        let e = file_err(&format!("{base}monitor = 1\n"));
        assert!(e.contains("monitor"), "{e}");
    }

    #[test]
    fn policy_keys_and_flags_combine() {
        let path = Path::new("t.toml");
        let file = parse(
            path,
            "interfaces = [\"eth0\"]\nports = [80]\nsource_rate = 100\nblock = [\"198.51.100.0/24\"]\n",
        )
        .unwrap();
        let mut a = args();
        a.block = vec!["2001:db8::/32".into()];
        a.reflect_cap = Some(500);
        let cfg = RunConfig::from_settings(&merge(&a, &file, path).unwrap()).unwrap();
        assert_eq!(cfg.limits.source_rate, 100);
        assert_eq!(
            cfg.limits.source_burst, 100,
            "one second's worth by default"
        );
        assert_eq!(cfg.limits.reflect_rate, 500);
        assert_eq!(cfg.block.len(), 2, "file and flag lists are joined");
        assert!(cfg.allow.is_empty());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = file_err("interfaces = [\"eth0\"]\nports = [80]\nsyn_treshold = 5\n");
        assert!(e.contains("unknown field `syn_treshold`"), "{e}");
        assert!(e.contains("syn_threshold"), "lists the known keys: {e}");
    }

    #[test]
    fn bad_port_is_named() {
        let e = file_err("interfaces = [\"eth0\"]\nports = [80, 70000]\n");
        assert_eq!(e, "t.toml: ports: 70000 is outside 1..65535");
        let e = file_err("interfaces = [\"eth0\"]\nports = [0]\n");
        assert_eq!(e, "t.toml: ports: 0 is outside 1..65535");
        let e = file_err("interfaces = [\"eth0\"]\nports = \"80\"\n");
        assert!(
            e.contains("ports") && e.contains("expected a sequence"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e = file_err("interfaces = [\"eth0\"]\nports = [80]\nmode = \"sometimes\"\n");
        assert!(
            e.contains("mode = \"sometimes\"") && e.contains("expected `auto` or `always`"),
            "{e}"
        );
        let e = file_err("interfaces = [\"eth0\"]\nports = [80]\nsyn_threshold = -5\n");
        assert!(e.contains("syn_threshold") && e.contains("u32"), "{e}");
        let e = file_err("interfaces = [\"eth0\"]\nports = [80]\nsyn_threshold = 0\n");
        assert!(e.contains("syn_threshold (--syn-threshold) must be"), "{e}");
        let e = file_err("ports = [80]\n");
        assert!(e.contains("no interface"), "{e}");
    }

    #[test]
    fn flags_override_the_file() {
        let path = Path::new("t.toml");
        let file = parse(
            path,
            "interfaces = [\"eth0\", \"eth1\"]\nports = [443, 80]\nmode = \"always\"\nhold = 3.0\n",
        )
        .unwrap();
        let mut a = args();
        a.ifaces = vec!["veth9".into()];
        a.mode = Some(ModeArg::Auto);
        let cfg = RunConfig::from_settings(&merge(&a, &file, path).unwrap()).unwrap();
        assert_eq!(cfg.ifaces, ["veth9"]);
        assert_eq!(cfg.ports, [80, 443], "from the file, sorted");
        assert_eq!(cfg.mode, config::CookieMode::Auto, "the flag wins");
        assert_eq!(cfg.hold.as_secs_f64(), 3.0);
    }

    #[test]
    fn dump_reads_back_as_the_same_config() {
        let path = Path::new("t.toml");
        let file = parse(
            path,
            "interfaces = [\"eth0\"]\nports = [22, 80]\nwscale = 9\n",
        )
        .unwrap();
        let cfg = RunConfig::from_settings(&merge(&args(), &file, path).unwrap()).unwrap();
        let again = parse(path, &dump(&cfg)).unwrap();
        let cfg2 = RunConfig::from_settings(&merge(&args(), &again, path).unwrap()).unwrap();
        assert_eq!(cfg, cfg2);
    }
}
