//! `sdkit`: the sdkit command-line tool.
//!
//! Each subcommand lives in its own module under `cmd/` (`serve` today; `watch`, `resolve`,
//! `register`, `call` and `demo` join the same way): an `Args` struct with clap's derive and
//! an async `run`. Logs go to stderr through `tracing` (filter with `RUST_LOG`); stdout is
//! kept for machine-readable output such as `serve`'s address line.

mod cmd;

use clap::Parser;
use std::process::ExitCode;

/// sdkit: pluggable service discovery toolkit.
#[derive(Debug, Parser)]
#[command(name = "sdkit", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sdkit: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.command.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sdkit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
