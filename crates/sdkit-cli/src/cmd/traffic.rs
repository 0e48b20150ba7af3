//! Traffic for `call` and `demo`: workers that GET `http://<service><path>` through the
//! sdkit-http client (endpointer → balancer (`--lb`, round-robin by default) → safe retries; a
//! retry avoids the instances that already failed the request), and the statistics they keep
//! (per-instance served and failed attempts, failed requests, latency percentiles), as text or
//! JSON.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sdkit::CancellationToken;
use sdkit::http::reqwest::Method;
use sdkit::http::{AttemptError, Client, Error as HttpError, Served};
use sdkit::lb::BalancerConfig;
use tokio::sync::watch;

use super::http::{KEY_HEADER, MAX_BODY};
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
    /// Records one attempt on `addr`.
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
    /// The service name registered in the client.
    pub service: Arc<str>,
    /// The path to GET.
    pub path: Arc<str>,
    /// Total requests; `None` runs until `stop` is cancelled.
    pub requests: Option<u64>,
    /// Parallel workers.
    pub concurrency: usize,
    /// Every request's hash key (`--key`), sent as [`KEY_HEADER`].
    pub key: Option<Arc<str>>,
}

/// Sends the planned traffic through `client`; returns when done (or when `stop` is cancelled).
pub async fn run(client: Client, plan: Plan, stats: Arc<Stats>, stop: CancellationToken) {
    let url: Arc<str> = format!("http://{}{}", plan.service, plan.path).into();
    let tickets = Arc::new(AtomicU64::new(plan.requests.unwrap_or(u64::MAX)));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let (client, url, stats, stop, tickets, key) = (
            client.clone(),
            url.clone(),
            stats.clone(),
            stop.clone(),
            tickets.clone(),
            plan.key.clone(),
        );
        workers.spawn(async move {
            while !stop.is_cancelled()
                && tickets
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                let started = Instant::now();
                let send = async {
                    match &key {
                        Some(key) => {
                            let request = client
                                .request(Method::GET, &url)
                                .header(KEY_HEADER, &**key)
                                .build();
                            match request {
                                Ok(request) => client.execute(request).await,
                                Err(e) => Err(HttpError::Reqwest(e)),
                            }
                        }
                        None => client.get(&url).await,
                    }
                };
                let request = async { outcome(send.await, &stats).await };
                let (result, attempts) = tokio::select! {
                    outcome = request => outcome,
                    () = stop.cancelled() => break,
                };
                stats.finished(result, attempts, started.elapsed());
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// A request's result — the serving instance, or what went wrong — and its attempt count;
/// every failed attempt is counted against its instance. A 4xx or 5xx answer, or a body over
/// [`MAX_BODY`], fails the request.
async fn outcome(
    result: Result<sdkit::http::reqwest::Response, HttpError>,
    stats: &Stats,
) -> (Result<String, String>, u64) {
    match result {
        Ok(mut response) => {
            let served = response.extensions().get::<Served>().cloned();
            let (addr, attempts) = match served {
                Some(served) => {
                    for failed in &served.failed {
                        stats.attempt(failed, false);
                    }
                    (served.addr.to_string(), u64::from(served.attempts))
                }
                None => (response.url().to_string(), 1),
            };
            let status = response.status();
            let mut read = 0usize;
            let body = loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        read += chunk.len();
                        if read > MAX_BODY {
                            break Err(format!("body over {MAX_BODY} bytes"));
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e.without_url().to_string()),
                }
            };
            let failure = match body {
                _ if status.is_client_error() || status.is_server_error() => {
                    Some(format!("{addr}: HTTP {status}"))
                }
                Err(e) => Some(format!("{addr}: reading the body: {e}")),
                Ok(()) => None,
            };
            match failure {
                Some(message) => {
                    stats.attempt(&addr, false);
                    (Err(message), attempts)
                }
                None => (Ok(addr), attempts),
            }
        }
        Err(error) => {
            for attempt in error.attempts() {
                if let Some(attempt) = AttemptError::find(attempt) {
                    stats.attempt(attempt.addr(), false);
                }
            }
            let message = match &error {
                HttpError::Attempts { source, .. } => source
                    .final_error()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| error.to_string()),
                other => other.to_string(),
            };
            let attempts = u64::try_from(error.attempts().len()).unwrap_or(u64::MAX);
            (Err(message), attempts.max(1))
        }
    }
}
