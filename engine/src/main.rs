use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.command);
    let result = execute(&cli.command).await;
    finish(result)
}

/// Logs to stderr: the operator at info by default, the CLI only its
/// errors. `SLUICE_LOG` (e.g. "debug", "sluice=debug") overrides both, and
/// `SLUICE_LOG_FORMAT=json` gives one JSON object per line.
fn init_logging(command: &Command) {
    let default_level = match command {
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
}

/// Runs `command`: what to print, and the exit code after it (1 for a
/// journal replay or a plugin check that did not pass).
async fn execute(command: &Command) -> anyhow::Result<(String, ExitCode)> {
    let output = match command {
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
        Command::Replay(args) => return sluice::replay::replay(args).await.map(passed),
        Command::Plugin(cli::PluginCommand::New(args)) => cli::plugin_new(args),
        Command::Plugin(cli::PluginCommand::Check(args)) => {
            return cli::plugin_check(args).await.map(passed);
        }
    };
    output.map(|out| (out, ExitCode::SUCCESS))
}

/// A report and the exit code of its verdict: 0 when it passed, else 1.
fn passed((report, ok): (String, bool)) -> (String, ExitCode) {
    let code = if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    (report, code)
}

/// Prints the command's output and exits with its code, or prints its
/// error and exits with 2.
fn finish(result: anyhow::Result<(String, ExitCode)>) -> ExitCode {
    match result {
        Ok((out, code)) => {
            print!("{out}");
            code
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
