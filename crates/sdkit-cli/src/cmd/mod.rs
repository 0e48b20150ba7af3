//! The subcommands, one module each.

mod serve;

use clap::Subcommand;

/// Every `sdkit` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded discovery registry (bilibili discovery HTTP API).
    Serve(serve::Args),
}

/// A subcommand failed; the text is shown to the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

impl Command {
    /// Runs the subcommand to completion.
    pub async fn run(self) -> Result<(), CommandError> {
        match self {
            Command::Serve(args) => serve::run(args).await,
        }
    }
}
