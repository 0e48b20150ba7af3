//! The feedback path: state kept by identity across updates, readiness as a filter with a
//! panic threshold, guards and outcomes through `BalancedService`, a retry that avoids the
//! endpoint that just failed, and least-loaded balancing with real timing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sdkit_core::lb::{
    Balancer, BalancerConfig, Classified, EndpointState, FailureClass, P2c, PickContext,
    RoundRobin, WeightedRandom,
};
use sdkit_core::retry::{Retry, RetryConfig};
use sdkit_core::{
    BalancedService, BoxError, EndpointSet, Endpointer, Factory, Instance, InstanceCache,
};
use tower::util::BoxCloneSyncService;
use tower::{ServiceExt, service_fn};

const DEADLINE: Duration = Duration::from_secs(10);

async fn wait_version<S>(set: &EndpointSet<S>, after: u64) {
    tokio::time::timeout(DEADLINE, set.changed_since(after))
        .await
        .expect("a new snapshot in time");
}

fn state_of(set: &EndpointSet<String>, id: &str) -> Option<Arc<EndpointState>> {
    set.snapshot()
        .iter()
        .find(|e| e.instance().id() == id)
        .map(|e| Arc::clone(e.state()))
}

/// Records the state the endpointer hands to the factory for each instance.
struct Recording(Arc<Mutex<Vec<(String, Arc<EndpointState>)>>>);

impl Factory<String> for Recording {
    fn make(&self, instance: &Instance) -> Result<String, BoxError> {
        Ok(instance.addr().to_owned())
    }
    fn make_with_state(
        &self,
        instance: &Instance,
        state: &Arc<EndpointState>,
    ) -> Result<String, BoxError> {
        self.0
            .lock()
            .unwrap()
            .push((instance.id().to_owned(), Arc::clone(state)));
        self.make(instance)
    }
}

#[tokio::test]
async fn state_is_kept_by_identity_and_fresh_when_re_added_or_moved() {
    let cache = InstanceCache::new();
    let a = Instance::new("a", "10.0.0.1:80");
    let b = Instance::new("b", "10.0.0.2:80");
    cache.update(vec![a.clone(), b.clone()]);
    let made = Arc::new(Mutex::new(Vec::new()));
    let endpointer = Endpointer::new(&cache, Recording(Arc::clone(&made)));
    endpointer.ready(DEADLINE).await.unwrap();
    let set = endpointer.endpoint_set();
    let a0 = state_of(&set, "a").unwrap();
    let b0 = state_of(&set, "b").unwrap();
    // The factory got the very state the endpoint carries.
    assert!(Arc::ptr_eq(&made.lock().unwrap()[0].1, &a0));
    assert_eq!(a0.joined_at(), None, "the first snapshot is warm");
    a0.set_ejected(true);

    // A changed weight keeps the endpoint and its state; health is never reset by an update.
    let v = set.version();
    cache.update(vec![a.clone().with_weight(7), b.clone()]);
    wait_version(&set, v).await;
    let a1 = state_of(&set, "a").unwrap();
    assert!(Arc::ptr_eq(&a0, &a1));
    assert!(a1.is_ejected());
    assert_eq!(set.snapshot().get(0).unwrap().instance().weight(), 7);

    // Removed then re-added: fresh state (and a join time, for slow start).
    let v = set.version();
    cache.update(vec![b.clone()]);
    wait_version(&set, v).await;
    assert!(state_of(&set, "a").is_none());
    let v = set.version();
    cache.update(vec![a.clone(), b.clone()]);
    wait_version(&set, v).await;
    let a2 = state_of(&set, "a").unwrap();
    assert!(!Arc::ptr_eq(&a0, &a2));
    assert!(a2.is_ready() && a2.joined_at().is_some());

    // A moved address is a new endpoint.
    let v = set.version();
    cache.update(vec![a.clone(), Instance::new("b", "10.0.0.9:80")]);
    wait_version(&set, v).await;
    assert!(!Arc::ptr_eq(&b0, &state_of(&set, "b").unwrap()));
    assert!(Arc::ptr_eq(&a2, &state_of(&set, "a").unwrap()));
    a0.set_ejected(false);
}

fn numbered(n: usize) -> EndpointSet<usize> {
    EndpointSet::fixed(
        (0..n).map(|i| (Instance::new(format!("e{i}"), format!("10.0.0.{i}:80")), i)),
    )
}

fn states(set: &EndpointSet<usize>) -> Vec<Arc<EndpointState>> {
    set.snapshot()
        .iter()
        .map(|e| Arc::clone(e.state()))
        .collect()
}

#[test]
fn not_ready_endpoints_are_skipped_until_fewer_than_half_are_ready() {
    for config in [
        "round_robin",
        "random",
        "weighted_round_robin",
        "weighted_random",
        "p2c",
        "p2c_peak_ewma",
    ] {
        let set = numbered(4);
        let s = states(&set);
        let b = config.parse::<BalancerConfig>().unwrap().build(set);
        s[1].set_transport_ready(false);
        s[2].set_healthy(false);
        // Two of four ready: at the threshold, readiness still filters.
        for _ in 0..400 {
            let i = b.pick().unwrap();
            assert!(i == 0 || i == 3, "{config} picked not-ready {i}");
        }
        // One of four ready: panic mode, readiness is ignored rather than overloading one.
        s[3].set_ejected(true);
        let mut seen = [false; 4];
        for _ in 0..400 {
            seen[b.pick().unwrap()] = true;
        }
        assert_eq!(seen, [true; 4], "{config} in panic mode");
        for state in &s {
            state.set_transport_ready(true);
            state.set_healthy(true);
            state.set_ejected(false);
        }
    }
}

#[test]
fn avoided_endpoints_are_skipped_while_another_is_ready() {
    let set = numbered(3);
    let s = states(&set);
    let rr = RoundRobin::new(set.clone());
    let first = rr.pick_with(&PickContext::new()).unwrap();
    let avoid = [first.key];
    for _ in 0..30 {
        assert_ne!(
            rr.pick_with(&PickContext::new().with_avoid(&avoid))
                .unwrap()
                .service,
            first.service
        );
    }
    // Only the avoided one is ready (and 1 of 3 is below the panic threshold, so readiness is
    // ignored): the avoided one is still never chosen over another.
    s[1].set_transport_ready(false);
    s[2].set_transport_ready(false);
    let avoid0 = [set.snapshot().get(0).unwrap().key()];
    for _ in 0..30 {
        assert_ne!(
            rr.pick_with(&PickContext::new().with_avoid(&avoid0))
                .unwrap()
                .service,
            0
        );
    }
    s[1].set_transport_ready(true);
    s[2].set_transport_ready(true);
    // Everything avoided: a pick still returns an endpoint.
    let all: Vec<_> = set.snapshot().iter().map(|e| e.key()).collect();
    assert!(rr.pick_with(&PickContext::new().with_avoid(&all)).is_ok());
}

type Svc = BoxCloneSyncService<u32, u32, BoxError>;

#[tokio::test]
async fn balanced_service_ends_guards_with_the_calls_outcome() {
    let ok = service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
    let refused = service_fn(|_: u32| async move {
        Err::<u32, BoxError>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
    });
    let hang = service_fn(|_: u32| std::future::pending::<Result<u32, BoxError>>());
    for (svc, class) in [
        (Svc::new(ok), None),
        (Svc::new(refused), Some(FailureClass::ConnectFailed)),
    ] {
        let set = EndpointSet::fixed([(Instance::from_addr("10.0.0.1:80"), svc)]);
        let state = Arc::clone(set.snapshot().get(0).unwrap().state());
        let service = BalancedService::new(P2c::least_in_flight(set));
        let result = service.oneshot(1).await;
        assert_eq!(result.is_ok(), class.is_none());
        assert_eq!(state.in_flight(), 0);
        assert_eq!(state.consecutive_failures(), u32::from(class.is_some()));
        if let Some(class) = class {
            assert_eq!(FailureClass::of(&result.unwrap_err()), class);
        }
    }
    // A call dropped unfinished is cancelled: in flight while it runs, then nothing counted.
    let set = EndpointSet::fixed([(Instance::from_addr("10.0.0.1:80"), Svc::new(hang))]);
    let state = Arc::clone(set.snapshot().get(0).unwrap().state());
    let call = BalancedService::new(P2c::peak_ewma(set)).oneshot(1);
    let mut call = Box::pin(call);
    assert!(futures_poll_once(&mut call).await.is_none());
    assert_eq!(state.in_flight(), 1);
    drop(call);
    assert_eq!((state.in_flight(), state.consecutive_failures()), (0, 0));
}

async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[test]
fn failure_classes_are_found_in_the_error_chain() {
    #[derive(Debug, thiserror::Error)]
    #[error("request failed")]
    struct Outer(#[source] Classified);
    let e: BoxError = Outer(Classified::new(FailureClass::Unavailable, "503")).into();
    assert_eq!(FailureClass::of(&e), FailureClass::Unavailable);
    let e: BoxError = std::io::Error::from(std::io::ErrorKind::TimedOut).into();
    assert_eq!(FailureClass::of(&e), FailureClass::Timeout);
    assert_eq!(
        FailureClass::of(&BoxError::from(sdkit_core::NoEndpoints)),
        FailureClass::Unavailable
    );
}

#[tokio::test]
async fn a_retry_avoids_the_endpoint_that_just_failed() {
    // The heavy endpoint (weight 1000) fails; without avoidance a retry would pick it again
    // 99.9 % of the time. With it, every call succeeds on its second attempt.
    let calls = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
    let make = |i: usize, fail: bool| {
        let calls = Arc::clone(&calls);
        Svc::new(service_fn(move |x: u32| {
            calls[i].fetch_add(1, Ordering::Relaxed);
            async move {
                if fail {
                    Err::<u32, BoxError>(
                        Classified::new(FailureClass::ServerError, "HTTP 500").into(),
                    )
                } else {
                    Ok(x)
                }
            }
        }))
    };
    let set = EndpointSet::fixed([
        (
            Instance::from_addr("10.0.0.1:80").with_weight(1000),
            make(0, true),
        ),
        (
            Instance::from_addr("10.0.0.2:80").with_weight(1),
            make(1, false),
        ),
    ]);
    let config = RetryConfig::new(2, DEADLINE).with_backoff(sdkit_core::Backoff::new(
        Duration::from_micros(1),
        Duration::from_micros(1),
    ));
    let retry = Retry::balanced(WeightedRandom::with_seed(set, 11), config);
    for _ in 0..200 {
        assert_eq!(retry.call(5).await.unwrap(), 5);
    }
    assert_eq!(calls[1].load(Ordering::Relaxed), 200);
}

/// Three endpoints, one ten times slower; `concurrency` callers send `total` requests.
/// (An error type without a trait object: futures holding `dyn Error` in a type parameter trip
/// a rustc limitation when spawned through a generic balancer.)
type Timed = BoxCloneSyncService<u32, u32, std::convert::Infallible>;

async fn served_by_the_slow_one<B: Balancer<Timed> + 'static>(
    balancer: impl FnOnce(EndpointSet<Timed>) -> B,
    total: u32,
    concurrency: u32,
) -> u32 {
    let served = Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]);
    let endpoint = |i: usize, delay: Duration| {
        let served = Arc::clone(&served);
        Timed::new(service_fn(move |x: u32| {
            served[i].fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, std::convert::Infallible>(x)
            }
        }))
    };
    let fast = Duration::from_millis(5);
    let set = EndpointSet::fixed([
        (Instance::from_addr("10.0.0.1:80"), endpoint(0, fast)),
        (Instance::from_addr("10.0.0.2:80"), endpoint(1, fast)),
        (Instance::from_addr("10.0.0.3:80"), endpoint(2, fast * 10)),
    ]);
    let service = BalancedService::new(balancer(set));
    let next = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let service = service.clone();
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    service.clone().oneshot(1).await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        served
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .sum::<u32>(),
        total
    );
    served[2].load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_sends_little_to_a_ten_times_slower_endpoint() {
    let start = Instant::now();
    let slow = served_by_the_slow_one(P2c::least_in_flight, 3_000, 20).await;
    eprintln!("p2c: {slow} of 3000");
    assert!(
        slow <= 300,
        "p2c: the slow endpoint served {slow} of 3000 (≤ 10 % wanted)"
    );
    let slow = served_by_the_slow_one(P2c::peak_ewma, 3_000, 20).await;
    eprintln!("p2c_peak_ewma: {slow} of 3000");
    assert!(
        slow <= 300,
        "p2c_peak_ewma: the slow endpoint served {slow} of 3000 (≤ 10 % wanted)"
    );
    // Round-robin, for contrast, gives it a third.
    let slow = served_by_the_slow_one(RoundRobin::new, 300, 20).await;
    assert!((95..=105).contains(&slow), "round-robin: {slow} of 300");
    eprintln!("took {:?}", start.elapsed());
}
