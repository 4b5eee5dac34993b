//! `synguard doctor`: the host's SYN-flood tuning, checked (and with `--apply`, set).

use clap::Args;

use crate::{
    config::parse_ports,
    daemon::{nic_gate, own_cookies},
    host::{
        sysctl::Sysctls,
        tuning::{Finding, apply, examine, text},
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

/// `synguard doctor`; the exit status is 1 when a check warns (after `--apply`, when one still
/// does), so a provisioning script can stop on it.
pub fn doctor(args: &DoctorArgs) -> anyhow::Result<i32> {
    let ports = match &args.ports {
        Some(text) => parse_ports(text)?,
        None => Vec::new(),
    };
    let findings = all_findings(args, &ports);
    if args.json {
        println!("{}", serde_json::to_string(&findings)?);
    } else {
        print!("{}", text(&findings));
    }
    let mut warnings = findings.iter().filter(|f| !f.ok).count();
    if args.apply {
        for change in apply(&findings, &Sysctls::default())? {
            println!("applied {change}");
        }
        warnings = all_findings(args, &ports).iter().filter(|f| !f.ok).count();
    }
    if warnings > 0 && !args.json {
        eprintln!("synguard doctor: {warnings} check(s) warn (exit status 1)");
    }
    Ok((warnings > 0) as i32)
}

/// Every check: the host's tuning, whether own cookies work here, and with `--iface` what the
/// driver needs for XDP_TX (the same findings `run` logs before it attaches).
fn all_findings(args: &DoctorArgs, ports: &[u16]) -> Vec<Finding> {
    let mut findings = examine(args.iface.as_deref(), ports);
    findings.push(own_cookies::doctor_finding(&Sysctls::default()));
    if let Some(iface) = &args.iface {
        findings.extend(nic_gate::doctor_findings(iface));
    }
    findings
}
