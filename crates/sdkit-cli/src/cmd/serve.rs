//! `sdkit serve`: run the embedded discovery registry until SIGINT or SIGTERM.
//!
//! When the listener is bound, one line `listening on <addr>` goes to stdout, so
//! `--listen 127.0.0.1:0` is usable from scripts. With `--metrics-listen`, a second line
//! `metrics on <addr>` follows, and Prometheus metrics are served at `/metrics` there. On a signal, parked polls are answered
//! -304 at once and open connections get a short grace period.

use super::CommandError;
use sdkit::duration;
use sdkit_discovery_server::{Lease, Limits, Server, Token};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::info;

const EXAMPLES: &str = "\
Examples:
  sdkit serve
  sdkit serve --listen 127.0.0.1:0 --env prod --zone sh001
  sdkit serve --hold 5s --evict-after 20s --evict-interval 5s
  SDKIT_SERVE_TOKEN=s3cret sdkit serve --listen 0.0.0.0:7171
  sdkit serve --metrics-listen 127.0.0.1:9171   # Prometheus scrapes /metrics there
  curl 'http://127.0.0.1:7171/discovery/fetch?env=dev&appid=infra.discovery&status=1'";

/// Options of `sdkit serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7171")]
    listen: SocketAddr,
    /// The registry's own env (it answers `infra.discovery` in every env).
    #[arg(long, default_value = "dev")]
    env: String,
    /// The registry's zone.
    #[arg(long, default_value = "local")]
    zone: String,
    /// The registry's region.
    #[arg(long, default_value = "local")]
    region: String,
    /// Hostname of the registry's own instance [default: `discovery-` and the address it listens on].
    #[arg(long)]
    hostname: Option<String>,
    /// Longest time a long poll is parked.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    hold: Duration,
    /// Evict instances not renewed for this long.
    #[arg(long, default_value = "90s", value_parser = duration::parse)]
    evict_after: Duration,
    /// How often leases are checked.
    #[arg(long, default_value = "60s", value_parser = duration::parse)]
    evict_interval: Duration,
    /// Turn self-preservation off (evict even when renews dry up everywhere).
    #[arg(long)]
    no_self_preservation: bool,
    /// Start in protect mode for this long (reads answer -500).
    #[arg(long, value_parser = duration::parse)]
    protect_for: Option<Duration>,
    /// Most instances in total.
    #[arg(long, default_value_t = Limits::default().max_instances)]
    max_instances: usize,
    /// Most parked polls, counted in appids listened to (a polls of n appids costs n).
    #[arg(long, default_value_t = Limits::default().max_parked_polls)]
    max_parked_polls: usize,
    /// Most parked polls from one client address, counted in appids.
    #[arg(long, default_value_t = Limits::default().max_parked_polls_per_addr)]
    max_parked_polls_per_addr: usize,
    /// Most open connections (mind the file descriptor limit, `ulimit -n`).
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Most open connections from one client address.
    #[arg(long, default_value_t = Limits::default().max_connections_per_addr)]
    max_connections_per_addr: usize,
    /// Largest fetch/all or fetchs answer, in bytes.
    #[arg(long, default_value_t = Limits::default().max_answer_bytes)]
    max_answer_bytes: usize,
    /// Bytes kept by the table of long-poll answers shared between pollers.
    #[arg(long, default_value_t = Limits::default().max_answer_cache_bytes)]
    max_answer_cache_bytes: usize,
    /// Longest wait for request headers (also the idle keep-alive timeout).
    #[arg(long, default_value = "40s", value_parser = duration::parse)]
    read_timeout: Duration,
    /// Longest wait for a request body.
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    body_timeout: Duration,
    /// Drop a connection whose client reads nothing of an answer for this long.
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    write_timeout: Duration,
    /// Bearer token required for writes; prefer the SDKIT_SERVE_TOKEN environment variable
    /// (a command line is visible to other local users).
    #[arg(long)]
    token: Option<String>,
    /// Require the token for reads too.
    #[arg(long)]
    token_reads: bool,
    /// Serve Prometheus metrics at `/metrics` on this address (off by default; port 0 picks
    /// a free one). No token is asked there: keep it on loopback or a private network.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

/// The token from `--token` or `SDKIT_SERVE_TOKEN` (empty means none).
fn token(flag: Option<String>) -> Option<Token> {
    flag.or_else(|| std::env::var("SDKIT_SERVE_TOKEN").ok())
        .filter(|t| !t.is_empty())
        .map(Token::new)
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(args: Args) -> Result<(), CommandError> {
    let lease = Lease {
        evict_after: args.evict_after,
        evict_interval: args.evict_interval,
        self_preservation: !args.no_self_preservation,
        ..Lease::default()
    };
    let limits = Limits {
        max_instances: args.max_instances,
        max_parked_polls: args.max_parked_polls,
        max_parked_polls_per_addr: args.max_parked_polls_per_addr,
        max_connections: args.max_connections,
        max_connections_per_addr: args.max_connections_per_addr,
        max_answer_bytes: args.max_answer_bytes,
        max_answer_cache_bytes: args.max_answer_cache_bytes,
        ..Limits::default()
    };
    let token = token(args.token);
    if args.token_reads && token.is_none() {
        return Err(CommandError(
            "--token-reads needs a token (--token or SDKIT_SERVE_TOKEN)".into(),
        ));
    }
    let mut builder = Server::builder()
        .env(args.env)
        .zone(args.zone)
        .region(args.region)
        .hold(args.hold)
        .lease(lease)
        .limits(limits);
    if let Some(hostname) = args.hostname {
        builder = builder.hostname(hostname);
    }
    if let Some(token) = token {
        builder = builder.token(token).token_reads(args.token_reads);
    }
    builder = builder
        .read_timeout(args.read_timeout)
        .body_timeout(args.body_timeout)
        .write_timeout(args.write_timeout);
    if let Some(protect) = args.protect_for {
        builder = builder.protect_for(protect);
    }
    let server = builder
        .build()
        .map_err(|e| CommandError(format!("invalid configuration: {e}")))?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| CommandError(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CommandError(format!("listener address: {e}")))?;
    let metrics = match args.metrics_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .map_err(|e| CommandError(format!("cannot listen on {at} for metrics: {e}")))?,
        ),
        None => None,
    };
    let signal = shutdown_signal()
        .map_err(|e| CommandError(format!("cannot install signal handlers: {e}")))?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")
            .and_then(|()| stdout.flush())
            .map_err(|e| CommandError(format!("writing to stdout: {e}")))?;
        if let Some(metrics) = &metrics {
            let at = metrics
                .local_addr()
                .map_err(|e| CommandError(format!("metrics listener address: {e}")))?;
            writeln!(stdout, "metrics on {at}")
                .and_then(|()| stdout.flush())
                .map_err(|e| CommandError(format!("writing to stdout: {e}")))?;
        }
    }
    let metrics = metrics.map(|listener| {
        let handle = server.handle();
        tokio::spawn(async move { handle.serve_metrics(listener).await })
    });
    server
        .serve_with_shutdown(listener, signal)
        .await
        .map_err(|e| CommandError(e.to_string()))?;
    if let Some(metrics) = metrics {
        // The serve future cancelled the shared shutdown token: the metrics listener ends.
        match metrics.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(CommandError(format!("metrics listener: {e}"))),
            Err(e) => return Err(CommandError(format!("metrics listener task: {e}"))),
        }
    }
    info!("stopped");
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT: shutting down"),
            _ = terminate.recv() => info!("SIGTERM: shutting down"),
        }
    })
}
