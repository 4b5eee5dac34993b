//! `synguard generate` (hidden, for packaging): man pages and shell completions, generated from
//! the command-line definitions in `cmd` so they never disagree with `--help`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cmd::Cli;

/// What `synguard generate` writes (hidden: for packaging).
#[derive(Debug, clap::Subcommand)]
pub enum GenerateCommand {
    /// Write synguard.8 and one page per subcommand into a directory.
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
    /// Print the completion script for a shell.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// synguard lives in /usr/sbin: its pages belong in section 8 (system administration).
pub const MAN_SECTION: &str = "8";

/// Writes `synguard.8` and one page per visible subcommand (`synguard-run.8`, ...) into `dir`;
/// returns the files written.
pub fn man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Builds the display names (`synguard-run`) the subcommand pages are named after.
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let page = clap_mangen::Man::new(cmd.clone())
        .section(MAN_SECTION)
        .manual("System Administration");
    let path = page
        .generate_to(dir)
        .with_context(|| format!("writing the man page {}", page.get_filename()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> Result<()> {
    let mut cmd = without_hidden_subcommands(Cli::command());
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
    out.flush().context("writing the completion script")
}

/// clap_complete offers hidden subcommands too (clap_complete 4.6 checks `hide` on arguments
/// only), and clap cannot remove a subcommand: copy the top level with the visible ones.
fn without_hidden_subcommands(full: clap::Command) -> clap::Command {
    let mut cmd = clap::Command::new(full.get_name().to_owned())
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(v) = full.get_version() {
        cmd = cmd.version(v.to_owned());
    }
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

/// The command behind `synguard generate`.
pub fn run(what: &GenerateCommand) -> Result<()> {
    match what {
        GenerateCommand::Man { out_dir } => {
            for path in man_pages(out_dir)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        GenerateCommand::Completions { shell } => completions(*shell, &mut io::stdout().lock()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_visible_subcommands_only() {
        let dir = std::env::temp_dir().join(format!("synguard-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = man_pages(&dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"synguard.8".to_owned()), "{names:?}");
        assert!(names.contains(&"synguard-run.8".to_owned()), "{names:?}");
        assert!(
            names.contains(&"synguard-block-add.8".to_owned()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
        let main = std::fs::read_to_string(dir.join("synguard.8")).unwrap();
        assert!(main.starts_with(".ie"), "not roff: {main:.80}");
        assert!(main.contains(".TH synguard 8"), "{main:.200}");
        let run = std::fs::read_to_string(dir.join("synguard-run.8")).unwrap();
        assert!(run.contains("syn\\-threshold"), "run's options missing");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn generate_is_hidden_from_help() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("doctor"), "{help}");
        assert!(!help.contains("generate"), "{help}");
    }

    #[test]
    fn completions_name_the_subcommands_but_not_generate() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("doctor"), "{shell}: no subcommands");
            assert!(text.contains("syn-threshold"), "{shell}: no run options");
            assert!(
                !text.contains("generate"),
                "{shell}: the hidden command leaked"
            );
        }
    }
}
