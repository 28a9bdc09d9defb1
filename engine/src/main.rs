use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The operator logs at info by default; the CLI only its errors.
    // `SLUICE_LOG` (e.g. "debug", "sluice=debug") overrides both, and
    // `SLUICE_LOG_FORMAT=json` gives one JSON object per line.
    let default_level = match cli.command {
        Command::Run(_) => "info",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| default_level.into());
    // Colours only on a terminal: piped or captured logs stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
    let result = match &cli.command {
        Command::Simulate(args) => cli::simulate(args).await,
        Command::Run(args) => sluice_operator::run::run(args.clone())
            .await
            .map(|()| String::new())
            .map_err(anyhow::Error::from),
        Command::Crd => cli::crds(),
        Command::Demo(args) => sluice::demo::demo(args).await,
        Command::Journal(sluice::replay::JournalCommand::Export(args)) => {
            sluice::replay::export(args).await
        }
        Command::Replay(args) => match sluice::replay::replay(args).await {
            Ok((report, true)) => Ok(report),
            Ok((report, false)) => {
                print!("{report}");
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        },
        Command::Plugin(cli::PluginCommand::New(args)) => cli::plugin_new(args),
        Command::Plugin(cli::PluginCommand::Check(args)) => match cli::plugin_check(args).await {
            Ok((report, true)) => Ok(report),
            Ok((report, false)) => {
                print!("{report}");
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
