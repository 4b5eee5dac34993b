//! `synguard doctor`: the host's SYN-flood tuning, checked (and with `--apply`, set).

use clap::Args;

use crate::{
    config::parse_ports,
    daemon::nic_gate,
    host::{
        sysctl::Sysctls,
        tuning::{apply, examine, text},
    },
};

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

/// `synguard doctor`.
pub fn doctor(args: &DoctorArgs) -> anyhow::Result<()> {
    let ports = match &args.ports {
        Some(text) => parse_ports(text)?,
        None => Vec::new(),
    };
    let mut findings = examine(args.iface.as_deref(), &ports);
    if let Some(iface) = &args.iface {
        // What the driver needs for XDP_TX: the same findings `run` logs before it attaches.
        findings.extend(nic_gate::doctor_findings(iface));
    }
    if args.json {
        println!("{}", serde_json::to_string(&findings)?);
    } else {
        print!("{}", text(&findings));
    }
    if args.apply {
        for change in apply(&findings, &Sysctls::default())? {
            println!("applied {change}");
        }
    }
    Ok(())
}
