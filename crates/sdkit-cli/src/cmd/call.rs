//! `sdkit call <target> <path>`: HTTP GETs through the sdkit-http client (endpointer →
//! balancer (`--lb`, round-robin by default) → safe retries), then how many requests each
//! instance served, failures, and latency percentiles.
//!
//! `--timeout` bounds each attempt; a request may take up to `--retries + 1` attempts (transport
//! errors, timeouts and 502/503/504 are retried on another instance; other answers are final).
//! Outlier ejection is on (`--no-outlier` turns it off): an instance failing 5 times in a row
//! is left out for a while.
//! Exit 0 when every request succeeded, 1 otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http;
use super::output::{Style, println_flush};
use super::traffic::{self, Plan, Stats};
use super::{CommandError, EXIT_ERROR, EXIT_OK, parse_target};
use sdkit::lb::outlier::{OutlierConfig, OutlierDetector};
use sdkit::{CancellationToken, duration};

/// The name the target is registered under in the client.
const SERVICE: &str = "target";

const EXAMPLES: &str = "\
Examples:
  sdkit call static://127.0.0.1:8081,127.0.0.1:8082 /health
  sdkit call 'discovery://127.0.0.1:7171/demo.hello?env=dev&scheme=http' / --requests 1000 --concurrency 8
  sdkit call consul://127.0.0.1:8500/web /api/ping --retries 3 --timeout 500ms
  sdkit call static://127.0.0.1:8081,127.0.0.1:8082 / --lb p2c_peak_ewma --json
  sdkit call etcd://127.0.0.1:2379/services/greeter --grpc            # gRPC health checks
  sdkit call etcd://127.0.0.1:2379/services/greeter --grpc greeter.Greeter --lb p2c

Exit status: 0 = every request succeeded, 1 = some failed (or no instance in time).";

/// Options of `sdkit call`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Registry URL: discovery://, consul://, etcd://, dnssrv:// or static://.
    target: String,
    /// The path to GET on each instance, e.g. `/health` (not with `--grpc`).
    #[arg(required_unless_present = "grpc")]
    path: Option<String>,
    #[command(flatten)]
    grpc: super::grpc::GrpcArgs,
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
    /// Balancer: round_robin, random, weighted_round_robin, weighted_random, p2c,
    /// p2c_peak_ewma, zone_aware, subset, maglev, ring_hash, or a JSON config such as '{"policy": "p2c", "slow_start": {"window": "30s"}}'.
    #[arg(long, default_value = "round_robin", value_parser = traffic::parse_lb)]
    lb: sdkit::lb::BalancerConfig,
    /// A hash key sent with every request (a `x-sdkit-key` header over HTTP, the call's
    /// request hash over gRPC): with `--lb maglev` or `ring_hash` every request goes to the
    /// key's instance while it answers.
    #[arg(long)]
    key: Option<String>,
    /// Print one JSON summary object (per instance, totals, latency percentiles) instead of
    /// the report.
    #[arg(long)]
    json: bool,
    /// Turn off outlier ejection (on by default: an instance failing 5 times in a row is left
    /// out for 30 s, longer if it keeps failing).
    #[arg(long)]
    no_outlier: bool,
}

/// Sends the requests and prints the report.
pub async fn run(args: Args) -> Result<u8, CommandError> {
    let target = parse_target(&args.target)?;
    if let Some(service) = &args.grpc.grpc {
        if args.json {
            return Err(CommandError(
                "--json is not supported with --grpc yet".to_owned(),
            ));
        }
        let plan = super::grpc::Plan {
            service: service.clone(),
            requests: args.requests,
            concurrency: args.concurrency.into(),
            retries: args.retries,
            timeout: args.timeout,
            wait: args.wait,
            lb: args.lb.clone(),
            key: args.key.clone(),
        };
        return super::grpc::run(&target, plan, &args.grpc).await;
    }
    let lb = args.lb;
    let path = args.path.unwrap_or_default();
    let instancer = target
        .instancer()
        .map_err(|e| CommandError(e.to_string()))?;
    let stats = Arc::new(Stats::default());
    let client = http::client(args.retries + 1, args.timeout, &lb)?;
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
    // Passive outlier ejection over the whole run (dropped with it).
    let outlier =
        (!args.no_outlier).then(|| OutlierDetector::spawn(&set, OutlierConfig::default()));
    let style = Style::detect();
    let policy = lb.policy();
    let path: Arc<str> = if path.starts_with('/') {
        path.into()
    } else {
        format!("/{path}").into()
    };
    if !args.json {
        println_flush(&format!(
            "{} GET {path} × {} over {} instances ({policy}, concurrency {}, up to {} attempts, {} per attempt)",
            style.bold("call"),
            args.requests,
            endpoints.len(),
            args.concurrency,
            args.retries + 1,
            duration::format(args.timeout)
        ))?;
    }
    let plan = Plan {
        service: SERVICE.into(),
        path,
        requests: Some(args.requests),
        concurrency: args.concurrency.into(),
        key: args.key.map(Arc::from),
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
    let ejected = outlier.as_ref().map(OutlierDetector::ejected);
    drop(outlier);
    client.remove_service(SERVICE);
    if args.json {
        println_flush(&stats.summary_json(policy, elapsed).to_string())?;
    } else {
        print_report(&stats, style, elapsed)?;
        if let Some(ejected) = ejected.filter(|e| !e.is_empty()) {
            println_flush(&format!(
                "  {} ejected at the end (outlier detection): {}",
                ejected.len(),
                ejected.join(", ")
            ))?;
        }
    }
    Ok(if stats.failed() == 0 {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

fn print_report(stats: &Stats, style: Style, elapsed: Duration) -> Result<(), CommandError> {
    println_flush(&stats.report(style, &|_| None))?;
    println_flush(&format!(
        "  {:.0} requests/s over {:.2}s",
        stats.completed() as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64()
    ))?;
    Ok(())
}
