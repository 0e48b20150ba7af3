//! Traffic for `call` and `demo`: workers that GET a path through retry → a balancer (`--lb`,
//! round-robin by default) over an endpoint set, and the statistics they keep (per-instance
//! served and failed attempts, failed requests, latency percentiles), as text or JSON.
//!
//! Every worker has its own balancer over the shared endpoint set (per-endpoint state such as
//! in-flight counts is shared through the endpoints); a retry avoids the instance that just
//! failed while another is ready.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sdkit::lb::BalancerConfig;
use sdkit::retry::{Decision, Retry, RetryConfig};
use sdkit::{Backoff, BoxError, CancellationToken, EndpointSet};
use tokio::sync::watch;

use super::http::{Get, HttpEndpoint, StatusError};
use super::output::Style;

/// Per-instance counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct PerInstance {
    /// Requests this instance answered successfully.
    pub served: u64,
    /// Attempts on this instance that failed (and were retried elsewhere or gave up).
    pub failed_attempts: u64,
}

/// What a run of traffic observed.
#[derive(Debug)]
pub struct Stats {
    instances: Mutex<BTreeMap<String, PerInstance>>,
    ok: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    latencies: Mutex<Vec<Duration>>,
    done: watch::Sender<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            instances: Mutex::default(),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            errors: Mutex::default(),
            latencies: Mutex::default(),
            done: watch::channel(0).0,
        }
    }
}

impl Stats {
    /// Records one attempt on `addr` (for the endpoint factory's hook).
    pub fn attempt(&self, addr: &str, ok: bool) {
        if !ok {
            let mut map = self
                .instances
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.entry(addr.to_owned()).or_default().failed_attempts += 1;
        }
    }

    /// Records one finished request: the address that served it (or the error), its attempts
    /// and latency.
    pub fn finished(&self, result: Result<String, String>, attempts: u64, latency: Duration) {
        if attempts > 1 {
            self.retried.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(addr) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let mut map = self
                    .instances
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                map.entry(addr).or_default().served += 1;
                drop(map);
                self.latencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(latency);
            }
            Err(message) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                *self
                    .errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(message)
                    .or_default() += 1;
            }
        }
        self.done.send_modify(|n| *n += 1);
    }

    /// Requests finished so far (ok or failed).
    pub fn completed(&self) -> u64 {
        *self.done.borrow()
    }

    /// Waits until at least `n` requests have finished.
    pub async fn wait_completed(&self, n: u64) {
        let mut rx = self.done.subscribe();
        // The sender lives in `self`, so this cannot end early.
        let _ = rx.wait_for(|done| *done >= n).await;
    }

    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Failed requests (every attempt failed).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Requests that needed more than one attempt.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Per-instance counters, by address.
    pub fn per_instance(&self) -> BTreeMap<String, PerInstance> {
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The report: per-instance bars, totals, failure reasons, latency percentiles.
    pub fn report(&self, style: Style, names: &dyn Fn(&str) -> Option<String>) -> String {
        let per = self.per_instance();
        let ok = self.ok();
        let width = per.keys().map(|a| a.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (addr, counts) in &per {
            let share = if ok == 0 {
                0.0
            } else {
                counts.served as f64 * 100.0 / ok as f64
            };
            let bar = "█".repeat(((share / 2.5).round() as usize).min(40));
            let label = match names(addr) {
                Some(name) => format!("{addr:<width$}  {name:<10}"),
                None => format!("{addr:<width$}"),
            };
            out.push_str(&format!(
                "  {label} {:>6} served ({share:5.1}%) {}",
                counts.served,
                style.cyan(&bar)
            ));
            if counts.failed_attempts > 0 {
                out.push_str(
                    &style.yellow(&format!("  {} failed attempts", counts.failed_attempts)),
                );
            }
            out.push('\n');
        }
        let failed = self.failed();
        let failed_text = format!("{failed} failed");
        out.push_str(&format!(
            "  {} ok, {}, {} retried",
            ok,
            if failed == 0 {
                style.green(&failed_text)
            } else {
                style.red(&failed_text)
            },
            self.retried()
        ));
        for (message, count) in self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            out.push_str(&format!("\n    {} × {}", count, style.red(message)));
        }
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if !latencies.is_empty() {
            latencies.sort_unstable();
            let at = |p: f64| {
                let index =
                    ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
                format_latency(latencies[index - 1])
            };
            out.push_str(&format!(
                "\n  latency p50 {}  p90 {}  p99 {}  max {}",
                at(0.50),
                at(0.90),
                at(0.99),
                at(1.0)
            ));
        }
        out
    }
}

impl Stats {
    /// The summary as one JSON object (for `--json`): per instance (address, served, failed
    /// attempts), totals, and latency percentiles in milliseconds.
    pub fn summary_json(&self, policy: &str, elapsed: Duration) -> serde_json::Value {
        let instances: Vec<serde_json::Value> = self
            .per_instance()
            .into_iter()
            .map(|(addr, c)| {
                serde_json::json!({
                    "address": addr,
                    "served": c.served,
                    "failed_attempts": c.failed_attempts,
                })
            })
            .collect();
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        latencies.sort_unstable();
        let at = |p: f64| {
            if latencies.is_empty() {
                return serde_json::Value::Null;
            }
            let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
            serde_json::json!(latencies[index - 1].as_secs_f64() * 1e3)
        };
        let errors: BTreeMap<String, u64> = self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        serde_json::json!({
            "policy": policy,
            "instances": instances,
            "totals": {
                "requests": self.completed(),
                "ok": self.ok(),
                "failed": self.failed(),
                "retried": self.retried(),
                "elapsed_s": elapsed.as_secs_f64(),
                "requests_per_s": self.completed() as f64 / elapsed.as_secs_f64().max(1e-9),
            },
            "errors": errors,
            "latency_ms": { "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0) },
        })
    }
}

/// Parses `--lb`: a policy name (`p2c_peak_ewma`) or a JSON balancer config.
pub fn parse_lb(text: &str) -> Result<BalancerConfig, String> {
    text.parse()
        .map_err(|e: sdkit::lb::UnknownPolicy| e.to_string())
}

fn format_latency(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    } else if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// How much traffic to send.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The path to GET.
    pub path: Arc<str>,
    /// Total requests; `None` runs until `stop` is cancelled.
    pub requests: Option<u64>,
    /// Parallel workers.
    pub concurrency: usize,
    /// Attempts per request (first included).
    pub attempts: u32,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
    /// The balancer each worker picks with.
    pub lb: BalancerConfig,
}

impl Plan {
    /// The retry configuration: `attempts` within `attempts × attempt_timeout` plus backoff.
    fn retry_config(&self) -> RetryConfig {
        let budget = self.attempt_timeout * self.attempts + Duration::from_secs(1);
        RetryConfig::new(self.attempts, budget).with_backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(200),
        ))
    }
}

/// Retry transport errors and 5xx; a 4xx is the answer.
fn policy(_attempt: u32, error: &BoxError) -> Decision {
    match error.downcast_ref::<StatusError>() {
        Some(e) if e.status.is_client_error() => Decision::Stop(None),
        _ => Decision::Retry,
    }
}

/// Sends the planned traffic over `set`; returns when done (or when `stop` is cancelled).
pub async fn run(
    set: EndpointSet<HttpEndpoint>,
    plan: Plan,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let tickets = Arc::new(AtomicU64::new(plan.requests.unwrap_or(u64::MAX)));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let retry =
            Retry::balanced(plan.lb.build(set.clone()), plan.retry_config()).with_policy(policy);
        let (plan, stats, stop, tickets) =
            (plan.clone(), stats.clone(), stop.clone(), tickets.clone());
        workers.spawn(async move {
            while !stop.is_cancelled()
                && tickets
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                let started = Instant::now();
                let request = Get::new(plan.path.clone());
                let result = tokio::select! {
                    result = retry.call(request.clone()) => result,
                    () = stop.cancelled() => break,
                };
                let latency = started.elapsed();
                match result {
                    Ok(reply) => {
                        stats.finished(
                            Ok(reply.addr.to_string()),
                            request.attempts().into(),
                            latency,
                        );
                    }
                    Err(error) => {
                        let attempts = request.attempts().into();
                        let message = error
                            .final_error()
                            .map(ToString::to_string)
                            .unwrap_or_else(|| error.to_string());
                        stats.finished(Err(message), attempts, latency);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}
