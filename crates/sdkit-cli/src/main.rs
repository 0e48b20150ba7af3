//! `sdkit`: the sdkit command-line tool.
//!
//! Each subcommand lives in its own module under `cmd/` (`serve`, `watch`, `resolve`,
//! `register`, `call`, `demo`): an `Args` struct with clap's derive and an async `run` that
//! returns the exit code. Logs go to stderr through `tracing` (filter with `RUST_LOG`; default
//! `warn`, `info` for `serve`); stdout is kept for the command's output.
//!
//! Exit status: 0 success; 1 any error, including a usage error or a malformed target; 2 only
//! from `resolve`, for a target that resolved to no instance.

mod cmd;

use clap::Parser;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Targets:
  discovery://127.0.0.1:7171/appid?env=dev&zone=sh001&scheme=http
  consul://127.0.0.1:8500/service?tag=v1&passing=true&ttl=10s
  etcd://127.0.0.1:2379/services/web?ttl=10s
  dnssrv://_http._tcp.web.example.com?nameserver=127.0.0.1:53
  static://10.0.0.1:8080,10.0.0.2:8080

Examples:
  sdkit demo
  sdkit serve --listen 127.0.0.1:7171
  sdkit register 'discovery://127.0.0.1:7171/demo.hello?env=dev&scheme=http' --addr 127.0.0.1:8080
  sdkit watch --json 'discovery://127.0.0.1:7171/demo.hello?env=dev&scheme=http'
  sdkit resolve etcd://127.0.0.1:2379/services/web
  sdkit call consul://127.0.0.1:8500/web /health --requests 1000

Exit status: 0 ok, 1 error (bad arguments or target, unreachable registry, timeout),
2 `resolve` found no instance.";

/// sdkit: pluggable service discovery toolkit.
#[derive(Debug, Parser)]
#[command(name = "sdkit", version, about, propagate_version = true, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1 like every other error: 2 means "resolved to nothing".
            return if e.use_stderr() {
                ExitCode::from(cmd::EXIT_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(matches!(cli.command, cmd::Command::Serve(_)));
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
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("sdkit: {e}");
            ExitCode::from(cmd::EXIT_ERROR)
        }
    }
}

fn init_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .init();
}

/// Colour in logs only for a terminal, and never with `NO_COLOR`.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
