//! The subcommands, one module each, and what they share: target parsing, signals, output.

mod call;
mod demo;
mod grpc;
mod http;
mod output;
mod register;
mod resolve;
mod serve;
mod traffic;
mod watch;

use clap::Subcommand;

/// Every `sdkit` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded discovery registry (bilibili discovery HTTP API).
    Serve(serve::Args),
    /// Print each distinct instance set of a target as it changes, until interrupted.
    Watch(watch::Args),
    /// Print the first instance set of a target and exit (0: instances, 2: none, 1: error).
    Resolve(resolve::Args),
    /// Register one instance, keep it alive, deregister on SIGINT or SIGTERM.
    Register(register::Args),
    /// Send HTTP GETs through endpointer → round-robin → retry and report the spread.
    Call(call::Args),
    /// Run the whole pipeline on the embedded registry: spread, a crash, a join.
    Demo(demo::Args),
}

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error (bad arguments, bad target, unreachable registry, timeout).
pub const EXIT_ERROR: u8 = 1;
/// Exit code of `resolve`: the target resolved, to no instance.
pub const EXIT_EMPTY: u8 = 2;

/// A subcommand failed; the text is shown to the user and the process exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

impl CommandError {
    /// An error with context: `"{context}: {error}"`.
    pub fn with(context: impl std::fmt::Display, error: impl std::fmt::Display) -> Self {
        CommandError(format!("{context}: {error}"))
    }
}

impl Command {
    /// Runs the subcommand to completion; returns the exit code on success.
    pub async fn run(self) -> Result<u8, CommandError> {
        match self {
            Command::Serve(args) => serve::run(args).await.map(|()| EXIT_OK),
            Command::Watch(args) => watch::run(args).await,
            Command::Resolve(args) => resolve::run(args).await,
            Command::Register(args) => register::run(args).await,
            Command::Call(args) => call::run(args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    }
}

/// Parses a target URL; a malformed one yields the `TargetError` text (it names the wrong part
/// and shows the expected form).
pub fn parse_target(input: &str) -> Result<sdkit::Target, CommandError> {
    sdkit::Target::parse(input).map_err(|e| CommandError(e.to_string()))
}

/// Resolves on the first SIGINT or SIGTERM; the name of the signal.
pub fn shutdown_signal()
-> Result<impl std::future::Future<Output = &'static str> + Send + 'static, CommandError> {
    use tokio::signal::unix::{SignalKind, signal};
    let install =
        |kind| signal(kind).map_err(|e| CommandError::with("cannot install signal handlers", e));
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}
