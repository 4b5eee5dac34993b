use clap::Parser as _;
use synguard::{
    cli::{Cli, Command},
    run,
};

#[tokio::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Stats(args) => run::stats(args).await,
    };
    if let Err(e) = result {
        eprintln!("synguard: {e:#}");
        std::process::exit(1);
    }
}
