use clap::Parser as _;
use synguard::{
    cli::{Cli, Command, ConfigCommand, LogFormat},
    config_file, detach, doctor, generate, lists, logging,
    policy::ListKind,
    reload, run, status,
};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => match config_file::resolve(args) {
            Ok(cfg) => {
                logging::init(cfg.log_format);
                run::run(&cfg, args).await
            }
            Err(e) => Err(e.into()),
        },
        command => {
            logging::init(LogFormat::Human);
            match command {
                Command::Run(_) => unreachable!("handled above"),
                Command::Stats(args) => run::stats(args).await.map(|()| 0),
                Command::Status(args) => status::status(args).map(|()| 0),
                Command::Detach(args) => detach::detach(args).map(|()| 0),
                Command::Doctor(args) => doctor::doctor(args).map(|()| 0),
                Command::Reload(args) => reload::signal(args).map(|()| 0),
                Command::Allow(op) => lists::list_command(ListKind::Allow, op).map(|()| 0),
                Command::Block(op) => lists::list_command(ListKind::Block, op).map(|()| 0),
                Command::Top(args) => lists::top(args).map(|()| 0),
                Command::Generate(what) => generate::run(what).map(|()| 0),
                Command::Config(ConfigCommand::Validate { file }) => config_file::validate(file)
                    .map(|_| {
                        println!("{}: ok", file.display());
                        0
                    })
                    .map_err(Into::into),
                Command::Config(ConfigCommand::Dump(args)) => config_file::resolve(args)
                    .map(|cfg| {
                        print!("{}", config_file::dump(&cfg));
                        0
                    })
                    .map_err(Into::into),
            }
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("synguard: {e:#}");
            std::process::exit(1);
        }
    }
}
