//! Endpointer: go-kit's cases (reuse, close on remove, factory errors, invalidation) and the ones
//! go-kit gets wrong (duplicates, stop, drop, concurrent picks).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sdkit_core::lb::{Balancer, RoundRobin};
use sdkit_core::{BoxError, Endpointer, EndpointerOptions, Instance, InstanceCache, SourceError};
use support::wait::eventually;

/// Counts how many endpoint services are alive (all clones of one count once).
#[derive(Default)]
struct Live(AtomicUsize);

struct Guard(Arc<Live>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct Svc {
    addr: String,
    _guard: Arc<Guard>,
}

struct Counting {
    made: Arc<AtomicUsize>,
    live: Arc<Live>,
}

impl Counting {
    fn new() -> Self {
        Counting {
            made: Arc::default(),
            live: Arc::default(),
        }
    }

    fn factory(&self) -> impl Fn(&Instance) -> Result<Svc, BoxError> + Send + Sync + 'static {
        let made = self.made.clone();
        let live = self.live.clone();
        move |i: &Instance| {
            made.fetch_add(1, Ordering::SeqCst);
            live.0.fetch_add(1, Ordering::SeqCst);
            Ok(Svc {
                addr: i.addr().to_owned(),
                _guard: Arc::new(Guard(live.clone())),
            })
        }
    }

    fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    fn live(&self) -> usize {
        self.live.0.load(Ordering::SeqCst)
    }
}

fn inst(n: usize) -> Instance {
    Instance::new(
        format!("i{n:05}"),
        format!("10.0.{}.{}:80", n / 250, n % 250),
    )
}

fn addrs(endpointer: &Endpointer<Svc>) -> Vec<String> {
    endpointer
        .endpoints()
        .iter()
        .map(|e| e.service().addr.clone())
        .collect()
}

async fn next_version(endpointer: &Endpointer<Svc>, after: u64) {
    let set = endpointer.endpoint_set();
    eventually("a new endpoint snapshot", || set.version() > after).await;
}

#[tokio::test]
async fn reuses_unchanged_endpoints_and_calls_the_factory_only_for_new_ones() {
    let source = InstanceCache::new();
    let counting = Counting::new();
    source.update(vec![inst(1), inst(2)]);
    let endpointer = Endpointer::new(&source, counting.factory());
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(counting.made(), 2);

    let v = endpointer.endpoint_set().version();
    source.update(vec![inst(1), inst(2), inst(3)]);
    next_version(&endpointer, v).await;
    assert_eq!(counting.made(), 3);
    assert_eq!(endpointer.endpoints().len(), 3);

    // A new weight is not a new endpoint: same service, updated instance.
    let v = endpointer.endpoint_set().version();
    source.update(vec![inst(1).with_weight(9), inst(2), inst(3)]);
    next_version(&endpointer, v).await;
    assert_eq!(counting.made(), 3);
    assert_eq!(
        endpointer.endpoints().get(0).unwrap().instance().weight(),
        9
    );

    // A new address is a new endpoint.
    let v = endpointer.endpoint_set().version();
    source.update(vec![
        Instance::new("i00001", "10.9.9.9:80"),
        inst(2),
        inst(3),
    ]);
    next_version(&endpointer, v).await;
    assert_eq!(counting.made(), 4);
    assert_eq!(addrs(&endpointer)[0], "10.9.9.9:80");
    eventually("the replaced endpoint is dropped", || counting.live() == 3).await;
}

#[tokio::test]
async fn removed_endpoints_are_dropped() {
    let source = InstanceCache::new();
    let counting = Counting::new();
    source.update((0..5).map(inst).collect());
    let endpointer = Endpointer::new(&source, counting.factory());
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(counting.live(), 5);
    source.update(vec![inst(0), inst(4)]);
    eventually("removed endpoints dropped", || counting.live() == 2).await;
    assert_eq!(addrs(&endpointer), [inst(0).addr(), inst(4).addr()]);
}

#[tokio::test]
async fn duplicates_in_one_snapshot_make_one_endpoint() {
    let source = InstanceCache::new();
    let counting = Counting::new();
    source.update(vec![inst(1), inst(1), inst(1)]);
    let endpointer = Endpointer::new(&source, counting.factory());
    let endpoints = endpointer.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(counting.made(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_factory_failure_skips_the_instance_and_is_retried() {
    let source = InstanceCache::new();
    let failures_left = Arc::new(AtomicUsize::new(2));
    let calls = Arc::new(AtomicUsize::new(0));
    let (f, c) = (failures_left.clone(), calls.clone());
    let factory = move |i: &Instance| -> Result<String, BoxError> {
        c.fetch_add(1, Ordering::SeqCst);
        if i.id() == "bad"
            && f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err("connect: refused".into());
        }
        Ok(i.addr().to_owned())
    };
    source.update(vec![
        Instance::new("bad", "b:1"),
        Instance::new("good", "g:1"),
    ]);
    let endpointer = Endpointer::new(&source, factory);
    let first = endpointer.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        first.len(),
        1,
        "the failing instance is skipped, the rest published"
    );
    assert_eq!(first.get(0).unwrap().instance().id(), "good");
    // Retried on a timer with backoff, without any new snapshot.
    let set = endpointer.endpoint_set();
    eventually("the failed instance retried", || set.load().len() == 2).await;
    assert_eq!(failures_left.load(Ordering::SeqCst), 0);
    // "good" made once, "bad" three times (two failures, one success).
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn source_errors_keep_the_last_endpoints_by_default() {
    let source = InstanceCache::new();
    source.update(vec![inst(1)]);
    let endpointer = Endpointer::new(&source, |i: &Instance| {
        Ok::<_, BoxError>(i.addr().to_owned())
    });
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    let v = endpointer.endpoint_set().version();
    source.error(SourceError::new("registry unreachable"));
    let set = endpointer.endpoint_set();
    eventually("error recorded", || set.version() > v).await;
    tokio::time::sleep(Duration::from_secs(3600)).await; // virtual: a long outage
    let endpoints = endpointer.endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(
        endpoints.error().unwrap().to_string(),
        "registry unreachable"
    );
}

#[tokio::test(start_paused = true)]
async fn invalidate_on_error_fires_on_a_timer_and_recovers() {
    let source = InstanceCache::new();
    source.update(vec![inst(1), inst(2)]);
    let endpointer = Endpointer::with_options(
        &source,
        |i: &Instance| Ok::<_, BoxError>(i.addr().to_owned()),
        EndpointerOptions::default().invalidate_on_error(Duration::from_secs(5)),
    );
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    let set = endpointer.endpoint_set();

    let start = tokio::time::Instant::now();
    source.error(SourceError::new("first failure"));
    // A second, different error must not push the deadline back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    source.error(SourceError::new("second failure"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        set.load().len(),
        2,
        "still within the timeout: stale but kept"
    );
    // Nobody reads; the timer alone empties the set at the first error + 5 s.
    eventually("invalidated", || set.load().is_empty()).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
    assert_eq!(set.load().error().unwrap().to_string(), "second failure");

    // A further, different failure carries the news but does not bring the stale set back.
    source.error(SourceError::new("third failure"));
    eventually("the new error published", || {
        set.load().error().map(ToString::to_string).as_deref() == Some("third failure")
    })
    .await;
    assert!(
        set.load().is_empty(),
        "stale endpoints came back after invalidation"
    );
    tokio::time::sleep(Duration::from_secs(60)).await; // virtual time
    assert!(set.load().is_empty(), "stale endpoints came back later");

    source.update(vec![inst(3)]);
    eventually("recovered", || set.load().len() == 1).await;
    assert!(set.load().error().is_none());
}

#[tokio::test]
async fn stop_is_idempotent_drops_everything_and_publishes_nothing_after() {
    let source = InstanceCache::new();
    let counting = Counting::new();
    source.update((0..10).map(inst).collect());
    let endpointer = Endpointer::new(&source, counting.factory());
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(counting.live(), 10);
    endpointer.stop();
    endpointer.stop();
    assert!(endpointer.endpoints().is_empty());
    assert_eq!(counting.live(), 0);
    let v = endpointer.endpoint_set().version();
    source.update((0..20).map(inst).collect());
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(endpointer.endpoint_set().version(), v);
    assert_eq!(counting.made(), 10);
}

#[tokio::test]
async fn dropping_the_endpointer_drops_every_endpoint() {
    let source = InstanceCache::new();
    let counting = Counting::new();
    source.update((0..10).map(inst).collect());
    let endpointer = Endpointer::new(&source, counting.factory());
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    let set = endpointer.endpoint_set(); // a balancer's view outlives the endpointer
    drop(endpointer);
    assert_eq!(counting.live(), 0);
    assert!(set.load().is_empty());
}

#[tokio::test]
async fn ready_gives_a_typed_error_when_nothing_arrives() {
    let source = InstanceCache::new();
    let endpointer = Endpointer::new(&source, |i: &Instance| {
        Ok::<_, BoxError>(i.addr().to_owned())
    });
    let err = endpointer
        .ready(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.waited, Duration::from_millis(50));
}

#[tokio::test]
async fn churn_of_one_percent_calls_the_factory_for_the_new_instances_only() {
    let source = InstanceCache::new();
    let counting = Counting::new();
    source.update((0..10_000).map(inst).collect());
    let endpointer = Endpointer::new(&source, counting.factory());
    endpointer.ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(counting.made(), 10_000);
    // Replace 100 instances (1 %).
    let v = endpointer.endpoint_set().version();
    source.update((100..10_100).map(inst).collect());
    next_version(&endpointer, v).await;
    assert_eq!(counting.made(), 10_100);
    assert_eq!(endpointer.endpoints().len(), 10_000);
    eventually("removed endpoints dropped", || counting.live() == 10_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_keep_working_while_snapshots_change() {
    let source = InstanceCache::new();
    let set_a: Vec<Instance> = (0..50).map(inst).collect();
    let set_b: Vec<Instance> = (25..100).map(inst).collect();
    source.update(set_a.clone());
    let endpointer = Endpointer::new(&source, |i: &Instance| Ok::<_, BoxError>(i.id().to_owned()));
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    let balancer = Arc::new(RoundRobin::new(endpointer.endpoint_set()));
    let stop = Arc::new(AtomicBool::new(false));

    let pickers: Vec<_> = (0..4)
        .map(|_| {
            let balancer = balancer.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut picks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = balancer
                        .pick()
                        .expect("never empty: both sets are non-empty");
                    let n: usize = id[1..].parse().expect("a known id");
                    assert!(n < 100);
                    picks += 1;
                }
                picks
            })
        })
        .collect();

    let set = endpointer.endpoint_set();
    for round in 0..200 {
        let v = set.version();
        source.update(if round % 2 == 0 {
            set_b.clone()
        } else {
            set_a.clone()
        });
        eventually("snapshot applied", || set.version() > v).await;
    }
    stop.store(true, Ordering::Relaxed);
    let total: u64 = pickers.into_iter().map(|p| p.join().unwrap()).sum();
    assert!(total > 0);
}

/// A service whose drop panics (a user's `Drop` gone wrong) for one address.
struct Fragile {
    addr: String,
    live: Arc<Live>,
}

impl Drop for Fragile {
    fn drop(&mut self) {
        self.live.0.fetch_sub(1, Ordering::SeqCst);
        if self.addr == inst(0).addr() && !std::thread::panicking() {
            panic!("test: this service's drop panics");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_while_reclaiming_a_large_set_does_not_stop_later_reclaims() {
    let live = Arc::new(Live::default());
    let factory = {
        let live = Arc::clone(&live);
        move |i: &Instance| {
            live.0.fetch_add(1, Ordering::SeqCst);
            Ok::<_, BoxError>(Arc::new(Fragile {
                addr: i.addr().to_owned(),
                live: Arc::clone(&live),
            }))
        }
    };
    // Large enough that superseded sets are dropped on the blocking pool.
    let n = 2_000;
    let source = InstanceCache::new();
    source.update((0..n).map(inst).collect());
    let endpointer = Endpointer::new(&source, factory);
    endpointer.ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(live.0.load(Ordering::SeqCst), n);
    // Instance 0 leaves: dropping its service panics on the reclaiming thread.
    source.update((1..n).map(inst).collect());
    eventually("the panicking service dropped", || {
        live.0.load(Ordering::SeqCst) == n - 1
    })
    .await;
    // Later removals are still reclaimed, one after the other.
    for gone in 1..=3 {
        source.update((1 + gone..n).map(inst).collect());
        eventually("a later removal reclaimed", || {
            live.0.load(Ordering::SeqCst) == n - 1 - gone
        })
        .await;
    }
    assert_eq!(endpointer.endpoints().len(), n - 4);
}
