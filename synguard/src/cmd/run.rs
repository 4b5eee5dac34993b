//! `synguard run`: the configuration (file, then flags), the log format it names, then the
//! daemon.

use crate::{
    cmd::logging,
    config::{RunArgs, file},
    daemon,
};

pub async fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let cfg = file::resolve(args)?;
    logging::init(cfg.log_format);
    daemon::run::run(&cfg, args).await
}
