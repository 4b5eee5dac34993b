//! `synguard config validate|dump`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::{RunArgs, file};

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

pub fn config(command: &ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Validate { file: path } => {
            file::validate(path)?;
            println!("{}: ok", path.display());
        }
        ConfigCommand::Dump(args) => print!("{}", file::dump(&file::resolve(args)?)),
    }
    Ok(())
}
