use clap::Parser as _;
use synguard::cmd::{Cli, dispatch, exit_code};

#[tokio::main]
async fn main() {
    match dispatch(Cli::parse()).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("synguard: {e:#}");
            std::process::exit(exit_code(&e));
        }
    }
}
