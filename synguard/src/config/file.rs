//! The TOML configuration file: reading it, merging the command line over it, and printing the
//! result. Unknown keys and values of the wrong type are refused by serde with the key named;
//! values of the right type but out of range are refused here or in `config`, also naming the key.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use thiserror::Error;

use crate::config::{
    ConfigError, CookieMode, DEFAULT_CONFIG, DEFAULT_PIN_BASE, DEFAULT_RUN_DIR, ModeArg, Ports,
    RunArgs, RunConfig, Settings, XdpAttach, XdpModeArg, settings,
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
    /// The message is the whole story: `error` is not a source, so that a chain printer
    /// (anyhow's `{:#}`) does not print it a second time.
    #[error("{}: {error}", path.display())]
    Invalid { path: PathBuf, error: ConfigError },
    #[error(transparent)]
    Args(#[from] ConfigError),
}

/// Parses the text of a configuration file. `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigFileError> {
    toml::from_str(text).map_err(|e| {
        // toml's message quotes the offending line and names the key or the expected type;
        // its trailing newline would only split our error.
        let mut message = plain_types(e.to_string().trim_end());
        if let Some(key) = e.span().and_then(|span| key_at(text, span.start))
            && let Some(meaning) = settings::key_meaning(&key)
        {
            message.push_str(&format!("\n{key}: {meaning}"));
        }
        ConfigFileError::Parse {
            path: path.to_path_buf(),
            message,
        }
    })
}

/// serde's names of number types, in words.
fn plain_types(message: &str) -> String {
    [
        ("expected u8", "expected a whole number from 0 to 255"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected f64", "expected a number"),
        ("expected i64", "expected a whole number"),
    ]
    .iter()
    .fold(message.to_string(), |m, (from, to)| m.replace(from, to))
}

/// The key of the `key = value` line that holds byte `at` of `text`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| key.to_string())
}

pub fn load(path: &Path) -> Result<Settings, ConfigFileError> {
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

/// Flags over file: a flag that was given wins, otherwise the file's key.
fn merge(args: &RunArgs, file: Settings) -> Settings {
    args.clone().over(file)
}

/// Validates the merged settings; an error names the file only when a value of the file is the
/// cause, not a flag's.
fn settle(
    args: &RunArgs,
    file: Settings,
    path: PathBuf,
    from_file: bool,
) -> Result<RunConfig, ConfigFileError> {
    RunConfig::from_settings(&merge(args, file)).map_err(|source| match source {
        ConfigError::FilePort(value) => ConfigFileError::Port { path, value },
        source if from_file && !source.is_about_flag_text() && !flags_at_fault(args, &source) => {
            ConfigFileError::Invalid {
                path,
                error: source,
            }
        }
        source => ConfigFileError::Args(source),
    })
}

/// Whether the flags alone (over placeholders for the required keys) make the same error: then
/// a flag's value is the cause. A missing interface or port list is nobody's value: the message
/// names both the flag and the key.
fn flags_at_fault(args: &RunArgs, error: &ConfigError) -> bool {
    if matches!(error, ConfigError::NoIface | ConfigError::NoPortsGiven) {
        return true;
    }
    let placeholders = Settings {
        ifaces: vec!["placeholder0".into()],
        ports: Some(Ports::File(vec![80])),
        ..Default::default()
    };
    RunConfig::from_settings(&merge(args, placeholders))
        .err()
        .as_ref()
        == Some(error)
}

/// The configuration `run` uses: the file (if any) with the flags on top, validated.
pub fn resolve(args: &RunArgs) -> Result<RunConfig, ConfigFileError> {
    let (file, path) = match chosen_file(args) {
        Some(path) => (load(&path)?, path),
        None => (Settings::default(), PathBuf::from("(command line)")),
    };
    let from_file = args.config.is_some() || path.exists();
    settle(args, file, path, from_file)
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
    let file = Settings {
        ifaces: cfg.ifaces.clone(),
        ports: Some(Ports::File(cfg.ports.iter().map(|&p| p as i64).collect())),
        mode: Some(match cfg.mode {
            CookieMode::Auto => ModeArg::Auto,
            CookieMode::Always => ModeArg::Always,
        }),
        syn_threshold: Some(cfg.syn_on_pps),
        syn_off_threshold: Some(cfg.syn_off_pps),
        hold: Some(cfg.hold.as_secs_f64()),
        xdp_mode: match cfg.xdp {
            XdpAttach::NativeThenSkb => None,
            XdpAttach::Native => Some(XdpModeArg::Native),
            XdpAttach::Skb => Some(XdpModeArg::Skb),
        },
        wscale: cfg.wscale,
        cookies: Some(cfg.cookies),
        cookie_secret_file: cfg.cookie_secret_file.clone(),
        own_tc: Some(cfg.own_tc),
        metrics_addr: cfg.metrics_addr.map(|a| a.to_string()),
        log_format: Some(cfg.log_format),
        source_rate: Some(cfg.limits.source_rate),
        source_burst: Some(cfg.limits.source_burst),
        source_block: Some(cfg.limits.source_block_secs),
        reflect_cap: Some(cfg.limits.reflect_rate),
        reflect_burst: Some(cfg.limits.reflect_burst),
        monitor: Some(cfg.limits.monitor),
        ignore_nic_checks: cfg.ignore_nic_checks.then_some(true),
        allow: cfg.allow.iter().map(ToString::to_string).collect(),
        block: cfg.block.iter().map(ToString::to_string).collect(),
        ..Default::default()
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
            Ok(file) => match settle(&args(), file, path.to_path_buf(), true) {
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
        let cfg = RunConfig::from_settings(&merge(&args(), file.clone())).unwrap();
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
        let cfg = RunConfig::from_settings(&merge(&a, file.clone())).unwrap();
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
        assert!(
            e.contains("expected a whole number from 0 to 4294967295"),
            "the type in words: {e}"
        );
        assert!(
            e.contains("syn_threshold: Auto mode: SYNs per second"),
            "what the key means: {e}"
        );
        let e = file_err("interfaces = [\"eth0\"]\nports = [80]\nhold = \"long\"\n");
        assert!(e.contains("hold: Auto mode: seconds"), "{e}");
        let e = file_err("interfaces = [\"eth0\"]\nports = [80]\nsyn_threshold = 0\n");
        assert!(e.contains("syn_threshold (--syn-threshold) must be"), "{e}");
        let e = file_err("ports = [80]\n");
        assert!(e.contains("no interface"), "{e}");
    }

    #[test]
    fn a_semantic_error_is_said_once_and_blamed_on_its_source() {
        let path = Path::new("t.toml");
        let base = "interfaces = [\"eth0\"]\nports = [80]\n";
        let e = ConfigFileError::Invalid {
            path: path.to_path_buf(),
            error: ConfigError::ZeroThreshold,
        };
        let chain = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chain.matches("must be at least").count(), 1, "{chain}");
        // The flag's value is wrong: the file is not named.
        let mut a = args();
        a.block = vec!["1.2.3.4/40".into()];
        let file = parse(path, base).unwrap();
        let e = settle(&a, file, path.to_path_buf(), true).unwrap_err();
        let text = format!("{:#}", anyhow::Error::from(e));
        assert!(text.starts_with("block (--block): invalid CIDR"), "{text}");
        assert_eq!(text.matches("invalid CIDR").count(), 1, "{text}");
        // The file's value is wrong: the file is named.
        let file = parse(path, &format!("{base}block = [\"1.2.3.4/40\"]\n")).unwrap();
        let e = settle(&args(), file, path.to_path_buf(), true).unwrap_err();
        assert!(e.to_string().starts_with("t.toml: block"), "{e}");
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
        let cfg = RunConfig::from_settings(&merge(&a, file.clone())).unwrap();
        assert_eq!(cfg.ifaces, ["veth9"]);
        assert_eq!(cfg.ports, [80, 443], "from the file, sorted");
        assert_eq!(cfg.mode, CookieMode::Auto, "the flag wins");
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
        let cfg = RunConfig::from_settings(&merge(&args(), file.clone())).unwrap();
        let again = parse(path, &dump(&cfg)).unwrap();
        let cfg2 = RunConfig::from_settings(&merge(&args(), again.clone())).unwrap();
        assert_eq!(cfg, cfg2);
    }
}
