//! `sdkit call TARGET --grpc [SERVICE]`: the standard health-checking protocol
//! (`grpc.health.v1.Health/Check`) through an sdkit gRPC channel, with the same report as HTTP
//! `call` — how many calls each instance answered, failures, latency percentiles — and the same
//! exit codes (0: every call answered SERVING, 1: otherwise).
//!
//! `--lb` picks the balancer (`round_robin`, any sdkit balancer by name); `--service-config`
//! takes a gRPC service config (JSON, or `@FILE`), whose `loadBalancingConfig` wins over `--lb`
//! and is how `pick_first` is chosen (`{"loadBalancingConfig": [{"pick_first": {}}]}`).
//! Without one, `--retries` becomes a retry policy on `UNAVAILABLE` (at most 4 retries, gRPC's
//! cap), and `--timeout` is each call's deadline, all attempts included.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sdkit::grpc::{Config, Served};
use sdkit::{Target, duration};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::output::{Style, println_flush};
use super::traffic::Stats;
use super::{CommandError, EXIT_ERROR, EXIT_OK};

/// The gRPC options of `sdkit call`.
#[derive(Debug, clap::Args)]
pub struct GrpcArgs {
    /// Call grpc.health.v1.Health/Check over gRPC instead of an HTTP GET; SERVICE is the
    /// service whose health to ask for (none: the server as a whole).
    #[arg(long, value_name = "SERVICE", num_args = 0..=1, default_missing_value = "", conflicts_with = "path")]
    pub grpc: Option<String>,
    /// A gRPC service config for --grpc (JSON text or @FILE): loadBalancingConfig, methodConfig
    /// (timeout, retryPolicy), retryThrottling.
    #[arg(long, value_name = "JSON", requires = "grpc")]
    pub service_config: Option<String>,
}

/// What to send.
#[derive(Debug)]
pub struct Plan {
    /// The health service name to check.
    pub service: String,
    /// Total calls.
    pub requests: u64,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Retries after the first attempt (when no service config is given).
    pub retries: u32,
    /// Each call's deadline.
    pub timeout: Duration,
    /// Longest wait for the first instances.
    pub wait: Duration,
    /// The balancing policy (`--lb`); `pick_first` comes from a service config.
    pub lb: sdkit::lb::BalancerConfig,
    /// Every call's request hash key (`--key`).
    pub key: Option<String>,
}

/// The service config: the user's, or a retry policy on UNAVAILABLE from `--retries`.
fn service_config(plan: &Plan, args: &GrpcArgs) -> Result<Option<String>, CommandError> {
    match args.service_config.as_deref() {
        Some(file) if file.starts_with('@') => std::fs::read_to_string(&file[1..])
            .map(Some)
            .map_err(|e| CommandError::with(format!("--service-config {file}"), e)),
        Some(json) => Ok(Some(json.to_owned())),
        None if plan.retries == 0 => Ok(None),
        None => Ok(Some(format!(
            r#"{{"methodConfig": [{{"name": [{{"service": "grpc.health.v1.Health"}}],
                "retryPolicy": {{"maxAttempts": {}, "initialBackoff": "0.005s", "maxBackoff": "0.2s",
                                 "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}}}]}}"#,
            (plan.retries + 1).min(5)
        ))),
    }
}

/// Sends the health checks and prints the report.
pub async fn run(target: &Target, plan: Plan, args: &GrpcArgs) -> Result<u8, CommandError> {
    let mut config = Config::default().with_ready_timeout(plan.timeout);
    config = config.with_lb(plan.lb.policy());
    if let Some(json) = service_config(&plan, args)? {
        config = config.with_service_config(json);
    }
    let channel =
        sdkit::grpc::target_channel(target, config).map_err(|e| CommandError(e.to_string()))?;
    let endpoints = match channel.ready(plan.wait).await {
        Ok(endpoints) if !endpoints.is_empty() => endpoints,
        Ok(endpoints) => {
            return Err(CommandError(match endpoints.error() {
                Some(error) => format!("{target}: {error}"),
                None => format!("{target}: no instances"),
            }));
        }
        Err(_) => {
            return Err(CommandError(format!(
                "{target}: no instances within {}",
                duration::format(plan.wait)
            )));
        }
    };
    let style = Style::detect();
    let shown = if plan.service.is_empty() {
        "(server)"
    } else {
        plan.service.as_str()
    };
    println_flush(&format!(
        "{} grpc.health.v1.Health/Check {shown} × {} over {} instances ({}, concurrency {}, deadline {})",
        style.bold("call"),
        plan.requests,
        endpoints.len(),
        channel.policy().name(),
        plan.concurrency,
        duration::format(plan.timeout)
    ))?;
    drop(endpoints);
    let stats = Arc::new(Stats::default());
    let tickets = Arc::new(AtomicU64::new(plan.requests));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let mut client = HealthClient::new(channel.clone());
        let (stats, tickets, service, timeout) = (
            stats.clone(),
            tickets.clone(),
            plan.service.clone(),
            plan.timeout,
        );
        let hash = plan
            .key
            .as_deref()
            .map(sdkit::lb::hash::RequestHash::of_key);
        workers.spawn(async move {
            while tickets
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let mut request = tonic::Request::new(HealthCheckRequest {
                    service: service.clone(),
                });
                request.set_timeout(timeout);
                if let Some(hash) = hash {
                    request.extensions_mut().insert(hash);
                }
                let begun = Instant::now();
                let result = client.check(request).await;
                let latency = begun.elapsed();
                match result {
                    Ok(response) => {
                        let (addr, attempts) = response
                            .extensions()
                            .get::<Served>()
                            .map_or(("?".to_owned(), 1), |s| (s.addr().to_owned(), s.attempts()));
                        let status = response.into_inner().status();
                        if status == ServingStatus::Serving {
                            stats.finished(Ok(addr), attempts.into(), latency);
                        } else {
                            stats.attempt(&addr, false);
                            stats.finished(
                                Err(format!("{addr}: {}", status.as_str_name())),
                                attempts.into(),
                                latency,
                            );
                        }
                    }
                    Err(status) => {
                        let message = format!("{:?}: {}", status.code(), status.message());
                        stats.finished(Err(message), 1, latency);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    drop(channel);
    println_flush(&stats.report(style, &|_| None))?;
    println_flush(&format!(
        "  {:.0} calls/s over {:.2}s",
        stats.completed() as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64()
    ))?;
    Ok(if stats.failed() == 0 {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}
