//! The metrics of every stage, read back through a real recorder installed globally: a
//! static pipeline (FixedInstancer → Endpointer → balancer → Retry) driven by real calls, and a
//! discovery registrar and instancer against the embedded registry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use sdkit_core::lb::BalancerConfig;
use sdkit_core::metrics::{Labels, names};
use sdkit_core::retry::{Retry, RetryConfig};
use sdkit_core::retry_budget::TpsBudget;
use sdkit_core::{
    Backoff, BoxError, Endpointer, FixedInstancer, Instance, Instancer as _, Registrar as _,
};
use sdkit_discovery::{Client, Config, InstancerConfig, RegistrarConfig};
use sdkit_discovery_server::Server;
use sdkit_testkit::discovery::DiscoveryServer;
use sdkit_testkit::wait_until_async;
use tower::service_fn;

/// Generous "eventually" bound: the machine is shared.
const EVENTUALLY: Duration = Duration::from_secs(15);

type SeriesKey = (String, Vec<(String, String)>);

struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// A recorder keeping every series in memory: counters and gauges as atomics (the `metrics`
/// crate's own `CounterFn`/`GaugeFn` implementations), histograms as sample lists.
#[derive(Clone, Default)]
struct Memory {
    counters: Arc<Mutex<HashMap<SeriesKey, Arc<AtomicU64>>>>,
    gauges: Arc<Mutex<HashMap<SeriesKey, Arc<AtomicU64>>>>,
    histograms: Arc<Mutex<HashMap<SeriesKey, Arc<Samples>>>>,
}

fn series_key(key: &Key) -> SeriesKey {
    let mut labels: Vec<(String, String)> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

fn wanted(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

impl Recorder for Memory {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.counters.lock().unwrap();
        Counter::from_arc(Arc::clone(map.entry(series_key(key)).or_default()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut map = self.gauges.lock().unwrap();
        Gauge::from_arc(Arc::clone(map.entry(series_key(key)).or_default()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut map = self.histograms.lock().unwrap();
        let samples = map
            .entry(series_key(key))
            .or_insert_with(|| Arc::new(Samples(Mutex::new(Vec::new()))));
        Histogram::from_arc(Arc::clone(samples))
    }
}

impl Memory {
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let map = self.counters.lock().unwrap();
        map.get(&wanted(name, labels))
            .map(|c| c.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let map = self.gauges.lock().unwrap();
        map.get(&wanted(name, labels))
            .map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
    }

    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let map = self.histograms.lock().unwrap();
        map.get(&wanted(name, labels))
            .map(|h| h.0.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Every series name recorded with label `service = service`.
    fn names_for(&self, service: &str) -> Vec<String> {
        let has = |k: &SeriesKey| k.1.iter().any(|(l, v)| l == "service" && v == service);
        let mut names: Vec<String> = (self.counters.lock().unwrap().keys())
            .chain(self.gauges.lock().unwrap().keys())
            .chain(self.histograms.lock().unwrap().keys())
            .filter(|k| has(k))
            .map(|k| k.0.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The process-wide recorder (installed once; tests use distinct service names).
fn recorder() -> &'static Memory {
    static RECORDER: OnceLock<Memory> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let memory = Memory::default();
        metrics::set_global_recorder(memory.clone()).expect("no other recorder");
        memory
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pipeline_records_every_stage() {
    let rec = recorder();
    let labels = Labels::new("users", "static");
    let instancer = FixedInstancer::labelled(
        labels.clone(),
        vec![
            Instance::from_addr("10.0.0.1:80"),
            Instance::from_addr("10.0.0.2:80"),
            Instance::from_addr("10.0.0.3:80"),
        ],
    );
    // The factory refuses 10.0.0.3; endpoint 10.0.0.1 fails every call.
    let endpointer = Endpointer::new(&instancer, |instance: &Instance| {
        let addr = instance.addr().to_owned();
        if addr == "10.0.0.3:80" {
            return Err::<_, BoxError>("no connection to 10.0.0.3".into());
        }
        Ok(service_fn(move |_: ()| {
            let addr = addr.clone();
            async move {
                if addr == "10.0.0.1:80" {
                    Err::<String, BoxError>("refused".into())
                } else {
                    Ok(addr)
                }
            }
        }))
    });
    endpointer.ready(EVENTUALLY).await.unwrap();
    let balancer = BalancerConfig::RoundRobin.build(endpointer.endpoint_set());
    let retry = Retry::balanced(balancer, RetryConfig::new(3, EVENTUALLY)).with_labels(labels);
    const CALLS: u64 = 6;
    for _ in 0..CALLS {
        assert_eq!(retry.call(()).await.unwrap(), "10.0.0.2:80");
    }

    let l = [("service", "users"), ("backend", "static")];
    let rr = [
        ("service", "users"),
        ("backend", "static"),
        ("policy", "round_robin"),
    ];
    assert_eq!(rec.gauge(names::INSTANCER_INSTANCES, &l), Some(3.0));
    assert_eq!(rec.counter(names::INSTANCER_UPDATES, &l), Some(1));
    assert_eq!(rec.counter(names::INSTANCER_ERRORS, &l), Some(0));
    let last_good = rec.gauge(names::INSTANCER_LAST_GOOD, &l).unwrap();
    assert!((unix_now() - last_good).abs() < 600.0, "{last_good}");
    assert_eq!(rec.gauge(names::ENDPOINTER_ENDPOINTS, &l), Some(2.0));
    assert_eq!(rec.gauge(names::ENDPOINTER_READY, &l), Some(2.0));
    assert!(rec.counter(names::ENDPOINTER_FACTORY_ERRORS, &l).unwrap() >= 1);

    let attempts = rec.counter(names::RETRY_ATTEMPTS, &l).unwrap();
    let retries = rec.counter(names::RETRY_RETRIES, &l).unwrap();
    assert_eq!(
        retries,
        attempts - CALLS,
        "every call succeeded, so retries = attempts − calls"
    );
    assert!(
        retries >= 1,
        "round-robin sent some first attempt to the failing endpoint"
    );
    assert_eq!(
        rec.counter(names::LB_PICKS, &rr),
        Some(attempts),
        "one pick per attempt"
    );
    assert_eq!(rec.counter(names::LB_NO_ENDPOINTS, &rr), Some(0));
    assert_eq!(rec.counter(names::RETRY_HEDGES, &l), Some(0));
    let durations = rec.samples(names::CALL_DURATION, &l);
    assert_eq!(durations.len() as u64, CALLS);
    assert!(
        durations
            .iter()
            .all(|d| *d >= 0.0 && *d < EVENTUALLY.as_secs_f64())
    );
    // Bounded labels only: no series of this service carries an address.
    for (k, labels) in rec.counters.lock().unwrap().keys() {
        for (_, v) in labels {
            assert!(!v.contains("10.0.0."), "{k} labelled with an address");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_set_and_exhausted_budgets_are_counted() {
    let rec = recorder();
    let labels = Labels::new("empty", "static");
    let instancer = FixedInstancer::labelled(labels.clone(), Vec::new());
    let endpointer = Endpointer::new(&instancer, |_: &Instance| {
        Ok::<_, BoxError>(service_fn(|_: ()| async { Ok::<_, BoxError>(()) }))
    });
    endpointer.ready(EVENTUALLY).await.unwrap();
    let balancer = BalancerConfig::P2c {
        seed: Some(1),
        slow_start: None,
    }
    .build(endpointer.endpoint_set());
    // No retry allowed by the budget: the first empty pick gives up at once.
    let retry = Retry::balanced(balancer, RetryConfig::new(3, EVENTUALLY))
        .with_labels(labels.clone())
        .with_budget(Arc::new(TpsBudget::new(Duration::from_secs(1), 0, 0.0)));
    assert!(retry.call(()).await.is_err());
    let l = [("service", "empty"), ("backend", "static")];
    let p2c = [
        ("service", "empty"),
        ("backend", "static"),
        ("policy", "p2c"),
    ];
    assert_eq!(rec.counter(names::LB_NO_ENDPOINTS, &p2c), Some(1));
    assert_eq!(rec.counter(names::LB_PICKS, &p2c), Some(0));
    let retry_budget = [
        ("service", "empty"),
        ("backend", "static"),
        ("budget", "retry"),
    ];
    assert_eq!(
        rec.counter(names::RETRY_BUDGET_EXHAUSTED, &retry_budget),
        Some(1)
    );
    assert_eq!(rec.gauge(names::ENDPOINTER_ENDPOINTS, &l), Some(0.0));

    // A call that never answers runs out of its time budget.
    let slow = Retry::new(
        service_fn(|_: ()| std::future::pending::<Result<(), BoxError>>()),
        RetryConfig::new(3, Duration::from_millis(50)),
    )
    .with_labels(labels);
    assert!(slow.call(()).await.is_err());
    let deadline = [
        ("service", "empty"),
        ("backend", "static"),
        ("budget", "deadline"),
    ];
    assert_eq!(
        rec.counter(names::RETRY_BUDGET_EXHAUSTED, &deadline),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_registrar_and_instancer_against_the_embedded_registry() {
    const APP: &str = "metrics.demo";
    let rec = recorder();
    let server = || {
        Server::builder()
            .env("dev")
            .zone("sh001")
            .hold(Duration::from_millis(500))
    };
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let client = |host: &str| {
        Client::new(
            Config::default()
                .with_nodes([srv.node()])
                .with_env("dev")
                .with_zone("sh001")
                .with_hostname(host)
                .with_self_discovery(true)
                .with_backoff(Backoff::new(
                    Duration::from_millis(50),
                    Duration::from_millis(200),
                ))
                .with_request_timeout(Duration::from_secs(5)),
        )
        .unwrap()
    };
    let (service, watcher) = (client("host-m"), client("watcher"));
    let registrar = service
        .registrar(
            RegistrarConfig::new(APP)
                .with_addr("grpc://127.0.0.1:9000")
                .with_renew_interval(Duration::from_millis(300))
                .with_backoff(Backoff::new(
                    Duration::from_millis(50),
                    Duration::from_millis(200),
                )),
        )
        .unwrap();
    registrar.register().await.unwrap();
    let l = [("service", APP), ("backend", "discovery")];
    assert_eq!(rec.gauge(names::REGISTRAR_REGISTERED, &l), Some(1.0));

    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    sub.wait_for(EVENTUALLY, |s| s.len() == 1).await.unwrap();
    assert_eq!(rec.gauge(names::INSTANCER_INSTANCES, &l), Some(1.0));
    assert!(rec.counter(names::INSTANCER_UPDATES, &l).unwrap() >= 1);

    // The registry restarts empty: the next renew finds the registration lost.
    let srv = srv.restart().await.unwrap();
    let reregistered = wait_until_async(EVENTUALLY, || {
        rec.counter(names::REGISTRAR_REREGISTRATIONS, &l) >= Some(1)
            && srv.handle().stats().instances >= 1
    })
    .await;
    assert!(reregistered, "{:?}", rec.names_for(APP));
    let back = wait_until_async(EVENTUALLY, || {
        rec.gauge(names::REGISTRAR_REGISTERED, &l) == Some(1.0)
    })
    .await;
    assert!(back, "registered again");

    // The registry goes away: renewals fail and are counted; the instancer reports errors.
    srv.stop().await;
    let failing = wait_until_async(EVENTUALLY, || {
        rec.counter(names::REGISTRAR_RENEW_FAILURES, &l) >= Some(1)
            && rec.counter(names::INSTANCER_ERRORS, &l) >= Some(1)
    })
    .await;
    assert!(failing, "renew failures and instancer errors counted");
    assert_eq!(
        rec.gauge(names::INSTANCER_INSTANCES, &l),
        Some(1.0),
        "the last good set is kept"
    );
    // Deregistering (the registry is gone: it fails) ends the loop: no longer registered.
    let _ = registrar.deregister().await;
    assert_eq!(rec.gauge(names::REGISTRAR_REGISTERED, &l), Some(0.0));
    instancer.stop();
}
