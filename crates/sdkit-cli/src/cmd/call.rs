//! `sdkit call <target> <path>`: HTTP GETs through the sdkit-http client (endpointer →
//! round-robin → safe retries), then how many requests each instance served, failures, and
//! latency percentiles.
//!
//! `--timeout` bounds each attempt; a request may take up to `--retries + 1` attempts (transport
//! errors, timeouts and 502/503/504 are retried on another instance; other answers are final).
//! Exit 0 when every request succeeded, 1 otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http;
use super::output::{Style, println_flush};
use super::traffic::{self, Plan, Stats};
use super::{CommandError, EXIT_ERROR, EXIT_OK, parse_target};
use sdkit::{CancellationToken, duration};

/// The name the target is registered under in the client.
const SERVICE: &str = "target";

const EXAMPLES: &str = "\
Examples:
  sdkit call static://127.0.0.1:8081,127.0.0.1:8082 /health
  sdkit call 'discovery://127.0.0.1:7171/demo.hello?env=dev&scheme=http' / --requests 1000 --concurrency 8
  sdkit call consul://127.0.0.1:8500/web /api/ping --retries 3 --timeout 500ms

Exit status: 0 = every request succeeded, 1 = some failed (or no instance in time).";

/// Options of `sdkit call`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Registry URL: discovery://, consul://, etcd://, dnssrv:// or static://.
    target: String,
    /// The path to GET on each instance, e.g. `/health`.
    path: String,
    /// Total requests.
    #[arg(long, short = 'n', default_value_t = 100)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Retries per request after the first attempt (each on the next instance).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: u32,
    /// Timeout of each attempt.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    timeout: Duration,
    /// Longest wait for the first instances.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    wait: Duration,
}

/// Sends the requests and prints the report.
pub async fn run(args: Args) -> Result<u8, CommandError> {
    let target = parse_target(&args.target)?;
    let instancer = target
        .instancer()
        .map_err(|e| CommandError(e.to_string()))?;
    let stats = Arc::new(Stats::default());
    let client = http::client(args.retries + 1, args.timeout)?;
    let set = http::register(&client, SERVICE, &target, instancer)?;
    // The first snapshot (even an empty one) answers.
    let ready = tokio::time::timeout(args.wait, set.changed_since(0))
        .await
        .map(|()| set.snapshot());
    let ready = match ready {
        Ok(endpoints) if !endpoints.is_empty() => Ok(endpoints),
        Ok(endpoints) => Err(match endpoints.error() {
            Some(error) => format!("{target}: {error}"),
            None => format!("{target}: no instances"),
        }),
        Err(_) => Err(format!(
            "{target}: no instances within {}",
            duration::format(args.wait)
        )),
    };
    let endpoints = match ready {
        Ok(endpoints) => endpoints,
        Err(message) => return Err(CommandError(message)),
    };
    let style = Style::detect();
    let path: Arc<str> = if args.path.starts_with('/') {
        args.path.into()
    } else {
        format!("/{}", args.path).into()
    };
    println_flush(&format!(
        "{} GET {path} × {} over {} instances (concurrency {}, up to {} attempts, {} per attempt)",
        style.bold("call"),
        args.requests,
        endpoints.len(),
        args.concurrency,
        args.retries + 1,
        duration::format(args.timeout)
    ))?;
    let plan = Plan {
        service: SERVICE.into(),
        path,
        requests: Some(args.requests),
        concurrency: args.concurrency.into(),
    };
    let started = Instant::now();
    traffic::run(
        client.clone(),
        plan,
        stats.clone(),
        CancellationToken::new(),
    )
    .await;
    let elapsed = started.elapsed();
    client.remove_service(SERVICE);
    println_flush(&stats.report(style, &|_| None))?;
    println_flush(&format!(
        "  {:.0} requests/s over {:.2}s",
        stats.completed() as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64()
    ))?;
    Ok(if stats.failed() == 0 {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}
