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
    RunArgs, RunConfig, Settings, XdpAttach, XdpModeArg,
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

/// Parses the text of a configuration file. `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigFileError> {
    toml::from_str(text).map_err(|e| ConfigFileError::Parse {
        path: path.to_path_buf(),
        // toml's message quotes the offending line and names the key or the expected type;
        // its trailing newline would only split our one-line error.
        message: e.to_string().trim_end().to_string(),
    })
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

/// Validates the merged settings; an error names the file when the file can be the cause.
fn settle(
    args: &RunArgs,
    file: Settings,
    path: PathBuf,
    from_file: bool,
) -> Result<RunConfig, ConfigFileError> {
    RunConfig::from_settings(&merge(args, file)).map_err(|source| match source {
        ConfigError::FilePort(value) => ConfigFileError::Port { path, value },
        source if from_file && !source.is_about_flag_text() => {
            ConfigFileError::Invalid { path, source }
        }
        source => ConfigFileError::Args(source),
    })
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
