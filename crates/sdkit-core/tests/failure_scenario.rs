//! The failure scenario over real sockets: five loopback hyper servers, one accepting
//! connections and never answering, one answering 503. 10 000 requests at concurrency 16 with
//! retry, through round-robin with outlier ejection, then through tower's p2c + PeakEwma
//! (no ejection) for comparison; and the bad instances' return once they recover.
//!
//! `cargo test -p sdkit-core --test failure_scenario -- --nocapture` prints the comparison.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sdkit_core::lb::RoundRobin;
use sdkit_core::lb::outlier::{OutlierConfig, OutlierDetector, OutlierEvent};
use sdkit_core::retry::{Retry, RetryConfig};
use sdkit_core::retry_budget::TpsBudget;
use sdkit_core::{Backoff, BoxError, EndpointSet, Instance};
use support::http::{Counts, Endpoint, Mode, TestServer, client, percentile};
use support::wait::wait_until;
use tower::ServiceExt;

const REQUESTS: u64 = 10_000;
const CONCURRENCY: usize = 16;
/// Short attempts keep the wall time low: the black hole costs one timeout per attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(250);
const ATTEMPTS: u32 = 4;
const THRESHOLD: u32 = 5;

struct World {
    servers: Vec<TestServer>,
    ids: Vec<Arc<str>>,
    counts: HashMap<Arc<str>, Arc<Counts>>,
    total: Arc<Counts>,
    endpoints: Vec<(Instance, Endpoint)>,
}

const BLACKHOLE: usize = 3;
const UNAVAILABLE: usize = 4;

async fn world() -> World {
    let mut servers = Vec::new();
    for i in 0..5 {
        let mode = match i {
            BLACKHOLE => Mode::Blackhole,
            UNAVAILABLE => Mode::Unavailable,
            _ => Mode::Ok,
        };
        servers.push(TestServer::start(mode).await);
    }
    let client = client();
    let total = Arc::new(Counts::default());
    let mut counts = HashMap::new();
    let mut ids = Vec::new();
    let mut endpoints = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let id: Arc<str> = Arc::from(format!("instance-{i}"));
        let c = Arc::new(Counts::default());
        counts.insert(Arc::clone(&id), Arc::clone(&c));
        ids.push(Arc::clone(&id));
        endpoints.push((
            Instance::new(id.as_ref(), server.addr.to_string()),
            Endpoint {
                client: client.clone(),
                uri: format!("http://{}/", server.addr).parse().unwrap(),
                id,
                timeout: ATTEMPT_TIMEOUT,
                counts: c,
                total: Arc::clone(&total),
            },
        ));
    }
    World {
        servers,
        ids,
        counts,
        total,
        endpoints,
    }
}

#[derive(Debug, Default)]
struct Run {
    failed_requests: u64,
    attempts: u64,
    failed_attempts: u64,
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Run {
    fn line(&mut self, name: &str) -> String {
        self.latencies.sort_unstable();
        format!(
            "{name:<28} {:>6} failed requests {:>6} attempts {:>6} failed attempts   p50 {:>8.2?}  p99 {:>8.2?}  wall {:.2?}",
            self.failed_requests,
            self.attempts,
            self.failed_attempts,
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.99),
            self.wall
        )
    }
}

/// Runs `REQUESTS` requests on `CONCURRENCY` workers, each calling `call`.
async fn drive<F, Fut>(total: &Counts, call: F) -> Run
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    let (attempts0, failed0) = (
        total.started.load(Ordering::Relaxed),
        total.failed.load(Ordering::Relaxed),
    );
    let tickets = Arc::new(AtomicU64::new(REQUESTS));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (call, tickets) = (call.clone(), Arc::clone(&tickets));
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0;
            while tickets
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let t = Instant::now();
                match call().await {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(_) => failed += 1,
                }
            }
            (latencies, failed)
        });
    }
    let mut run = Run::default();
    while let Some(done) = workers.join_next().await {
        let (latencies, failed) = done.unwrap();
        run.latencies.extend(latencies);
        run.failed_requests += failed;
    }
    run.wall = started.elapsed();
    run.attempts = total.started.load(Ordering::Relaxed) - attempts0;
    run.failed_attempts = total.failed.load(Ordering::Relaxed) - failed0;
    run
}

/// An ejection as seen when it happened: the instance's and all attempts started by then.
#[derive(Debug, Clone)]
struct Ejection {
    id: Arc<str>,
    instance_started: u64,
    instance_failed: u64,
    total_started: u64,
}

fn retry_config() -> RetryConfig {
    RetryConfig::new(ATTEMPTS, Duration::from_secs(10)).with_backoff(Backoff::new(
        Duration::from_millis(1),
        Duration::from_millis(10),
    ))
}

fn listener(
    counts: &HashMap<Arc<str>, Arc<Counts>>,
    total: &Arc<Counts>,
    log: &Arc<Mutex<Vec<Ejection>>>,
) -> impl Fn(&OutlierEvent) + Send + Sync + 'static {
    let (counts, total, log) = (counts.clone(), Arc::clone(total), Arc::clone(log));
    move |event| {
        if let OutlierEvent::Ejected { id, .. } = event {
            let instance_started = counts[id].started.load(Ordering::Relaxed);
            let instance_failed = counts[id].failed.load(Ordering::Relaxed);
            log.lock().unwrap().push(Ejection {
                id: Arc::clone(id),
                instance_started,
                instance_failed,
                total_started: total.started.load(Ordering::Relaxed),
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_ejection_vs_tower_p2c_peak_ewma() {
    let w = world().await;

    // 1. sdkit: round-robin + outlier ejection + retry with a budget.
    let set = EndpointSet::fixed(w.endpoints.clone());
    let log = Arc::new(Mutex::new(Vec::new()));
    // Envoy's defaults but for the cap: 10 % of five hosts ejects only one; 40 % allows both.
    let config = OutlierConfig::default().with_max_ejection_percent(40);
    let detector = OutlierDetector::spawn_with(&set, config, listener(&w.counts, &w.total, &log));
    let retry = Retry::balanced(RoundRobin::new(set.clone()), retry_config())
        .with_budget(Arc::new(TpsBudget::default()));
    let mut ours = drive(&w.total, move || {
        let retry = retry.clone();
        async move { retry.call(()).await.map(drop).map_err(Into::into) }
    })
    .await;
    let end: HashMap<Arc<str>, u64> = w
        .counts
        .iter()
        .map(|(id, c)| (Arc::clone(id), c.started.load(Ordering::Relaxed)))
        .collect();
    let total_end = w.total.started.load(Ordering::Relaxed);
    let ejections = log.lock().unwrap().clone();
    drop(detector);

    // 2. tower: p2c over PeakEwma, the same servers, the same retry count, no ejection.
    let mut theirs = tower_run(&w).await;

    let ours_line = ours.line("sdkit rr + outlier ejection");
    let theirs_line = theirs.line("tower p2c + PeakEwma");
    eprintln!("{ours_line}\n{theirs_line}");
    for e in &ejections {
        eprintln!(
            "ejected {} after {} failed attempts on it ({} started on it, {} in all)",
            e.id, e.instance_failed, e.instance_started, e.total_started
        );
    }

    assert_eq!(ours.failed_requests, 0, "{ours_line}");
    for bad in [BLACKHOLE, UNAVAILABLE] {
        let id = &w.ids[bad];
        let first = ejections
            .iter()
            .find(|e| &e.id == id)
            .unwrap_or_else(|| panic!("{id} never ejected: {ejections:?}"));
        // Within the threshold: five failures in a row, plus those finishing at the same time
        // on the other workers.
        assert!(
            first.instance_failed <= u64::from(THRESHOLD) + CONCURRENCY as u64,
            "{id} ejected only after {} failed attempts",
            first.instance_failed
        );
        let after = end[id] - first.instance_started;
        let all_after = total_end - first.total_started;
        assert!(
            after * 50 <= all_after,
            "{id} got {after} of {all_after} attempts after its ejection (> 2 %)"
        );
    }
    for good in [0, 1, 2] {
        assert!(
            !ejections.iter().any(|e| e.id == w.ids[good]),
            "a good instance was ejected: {ejections:?}"
        );
    }
    assert!(
        theirs.failed_attempts > ours.failed_attempts,
        "without ejection, p2c should waste more attempts: {theirs_line} vs {ours_line}"
    );
}

async fn tower_run(w: &World) -> Run {
    use tower::balance::p2c::Balance;
    use tower::discover::ServiceList;
    use tower::load::{CompleteOnResponse, PeakEwma};

    let services: Vec<_> = w
        .endpoints
        .iter()
        .map(|(_, e)| {
            PeakEwma::new(
                e.clone(),
                Duration::from_millis(1),
                Duration::from_secs(10).as_nanos() as f64,
                CompleteOnResponse::default(),
            )
        })
        .collect();
    let balance = Arc::new(tokio::sync::Mutex::new(Balance::new(ServiceList::new(
        services,
    ))));
    drive(&w.total, move || {
        let balance = Arc::clone(&balance);
        async move {
            let mut last: Option<BoxError> = None;
            for _ in 0..ATTEMPTS {
                let call = {
                    let mut balance = balance.lock().await;
                    let ready = balance.ready().await?;
                    tower::Service::call(ready, ())
                };
                match call.await {
                    Ok(_) => return Ok(()),
                    Err(error) => last = Some(error),
                }
            }
            Err(last.unwrap_or_else(|| "no attempt".into()))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejected_instances_are_picked_again_once_they_recover() {
    let w = world().await;
    let set = EndpointSet::fixed(w.endpoints.clone());
    let log = Arc::new(Mutex::new(Vec::new()));
    let config = OutlierConfig::default()
        .with_max_ejection_percent(40)
        .with_base_ejection_time(Duration::from_millis(300));
    let detector = OutlierDetector::spawn_with(&set, config, listener(&w.counts, &w.total, &log));
    let retry = Retry::balanced(RoundRobin::new(set.clone()), retry_config());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (retry, stop, failed) = (retry.clone(), Arc::clone(&stop), Arc::clone(&failed));
        workers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if retry.call(()).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let bad = [&w.ids[BLACKHOLE], &w.ids[UNAVAILABLE]];
    wait_until(
        Duration::from_secs(20),
        "both bad instances ejected",
        || {
            let log = log.lock().unwrap();
            bad.iter().all(|id| log.iter().any(|e| &e.id == *id))
        },
    )
    .await;
    w.servers[BLACKHOLE].set_mode(Mode::Ok);
    w.servers[UNAVAILABLE].set_mode(Mode::Ok);
    let served = |i: usize| {
        let c = &w.counts[&w.ids[i]];
        c.started.load(Ordering::Relaxed) - c.failed.load(Ordering::Relaxed)
    };
    let before = [served(BLACKHOLE), served(UNAVAILABLE)];
    wait_until(
        Duration::from_secs(30),
        "recovered instances serve again",
        || served(BLACKHOLE) >= before[0] + 50 && served(UNAVAILABLE) >= before[1] + 50,
    )
    .await;
    wait_until(Duration::from_secs(30), "no ejection left", || {
        detector.ejected().is_empty()
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    assert_eq!(failed.load(Ordering::Relaxed), 0);
}
