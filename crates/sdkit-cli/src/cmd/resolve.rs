//! `sdkit resolve <target>`: print the first instance set and exit.
//!
//! Exit codes: 0 with at least one instance, 2 with none, 1 on an error snapshot, a timeout or
//! a malformed target.

use std::time::Duration;

use super::output::{Style, println_flush, snapshot_json, snapshot_text};
use super::{CommandError, EXIT_EMPTY, EXIT_ERROR, EXIT_OK, parse_target};
use sdkit::{Instancer, duration};

const EXAMPLES: &str = "\
Examples:
  sdkit resolve static://10.0.0.1:8080,10.0.0.2:8080
  sdkit resolve --json 'discovery://127.0.0.1:7171/demo.hello?env=dev&scheme=http'
  sdkit resolve --timeout 2s etcd://127.0.0.1:2379/services/web || echo \"exit $?\"

Exit status: 0 = at least one instance, 2 = resolved to none, 1 = error or timeout.";

/// Options of `sdkit resolve`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Registry URL: discovery://, consul://, etcd://, dnssrv:// or static://.
    target: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Longest wait for the first instance set.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    timeout: Duration,
}

/// Resolves once.
pub async fn run(args: Args) -> Result<u8, CommandError> {
    let target = parse_target(&args.target)?;
    let instancer = target
        .instancer()
        .map_err(|e| CommandError(e.to_string()))?;
    let mut subscription = instancer.subscribe();
    let first = subscription.ready(args.timeout).await;
    instancer.stop();
    let snapshot = first.map_err(|_| {
        CommandError(format!(
            "{target}: no answer from the registry within {}",
            duration::format(args.timeout)
        ))
    })?;
    if args.json {
        println_flush(&snapshot_json(&snapshot))?;
    } else {
        println_flush(&snapshot_text(&snapshot, Style::detect()))?;
    }
    Ok(if let Some(error) = snapshot.error() {
        eprintln!("sdkit: {target}: {error}");
        EXIT_ERROR
    } else if snapshot.instances().is_empty() {
        EXIT_EMPTY
    } else {
        EXIT_OK
    })
}
