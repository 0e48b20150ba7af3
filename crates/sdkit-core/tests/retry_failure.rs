//! Retry's failure-aware options end to end (paused Tokio time: the endpoints below take
//! simulated time): hedging through the balancer, hedges taken from the budget, fail-fast with
//! recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use sdkit_core::fail_fast::{FailFast, FailFastError};
use sdkit_core::hedge::{Hedge, HedgeDelay};
use sdkit_core::lb::RoundRobin;
use sdkit_core::retry::{GaveUp, Retry, RetryConfig};
use sdkit_core::retry_budget::TpsBudget;
use sdkit_core::{BoxError, EndpointSet, Instance};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;

type Svc = BoxCloneSyncService<(), &'static str, BoxError>;

/// Answers `answer` after `after`; sets `cancelled` if dropped before.
fn endpoint(after: Duration, answer: &'static str, cancelled: Arc<AtomicBool>) -> Svc {
    BoxCloneSyncService::new(tower::service_fn(move |()| {
        let cancelled = Arc::clone(&cancelled);
        async move {
            struct Flag(Arc<AtomicBool>, bool);
            impl Drop for Flag {
                fn drop(&mut self) {
                    if !self.1 {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
            }
            let mut flag = Flag(cancelled, false);
            tokio::time::sleep(after).await;
            flag.1 = true;
            Ok::<_, BoxError>(answer)
        }
    }))
}

fn slow_and_fast(slow_cancelled: &Arc<AtomicBool>) -> EndpointSet<Svc> {
    EndpointSet::fixed([
        (
            Instance::new("a-slow", "10.0.0.1:80"),
            endpoint(Duration::from_secs(1), "slow", Arc::clone(slow_cancelled)),
        ),
        (
            Instance::new("b-fast", "10.0.0.2:80"),
            endpoint(Duration::from_millis(10), "fast", Arc::default()),
        ),
    ])
}

#[tokio::test(start_paused = true)]
async fn a_hedge_to_another_endpoint_answers_and_the_slow_attempt_is_cancelled() {
    let cancelled = Arc::new(AtomicBool::new(false));
    let retry = Retry::balanced(
        RoundRobin::new(slow_and_fast(&cancelled)),
        RetryConfig::new(1, Duration::from_secs(5)),
    )
    .with_hedge(Arc::new(Hedge::new(HedgeDelay::Fixed(
        Duration::from_millis(50),
    ))));
    let started = Instant::now();
    assert_eq!(retry.call(()).await.unwrap(), "fast");
    assert_eq!(started.elapsed(), Duration::from_millis(60));
    assert!(cancelled.load(Ordering::SeqCst), "the loser is cancelled");
}

#[tokio::test(start_paused = true)]
async fn hedges_count_against_the_retry_budget() {
    let cancelled = Arc::new(AtomicBool::new(false));
    // No reserve, no percentage: nothing may be withdrawn, so no hedge.
    let budget = Arc::new(TpsBudget::new(Duration::from_secs(10), 0, 0.0));
    let retry = Retry::balanced(
        RoundRobin::new(slow_and_fast(&cancelled)),
        RetryConfig::new(1, Duration::from_secs(5)),
    )
    .with_budget(budget)
    .with_hedge(Arc::new(Hedge::new(HedgeDelay::Fixed(
        Duration::from_millis(50),
    ))));
    let started = Instant::now();
    assert_eq!(retry.call(()).await.unwrap(), "slow");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert!(!cancelled.load(Ordering::SeqCst));
}

fn failing(calls: &Arc<AtomicU32>) -> Svc {
    let calls = Arc::clone(calls);
    BoxCloneSyncService::new(tower::service_fn(move |()| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<&'static str, BoxError>("connection refused".into()) }
    }))
}

#[tokio::test(start_paused = true)]
async fn calls_fail_fast_once_no_endpoint_was_ready_for_3s_and_recover_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let set = EndpointSet::fixed([
        (Instance::new("a", "10.0.0.1:80"), failing(&calls)),
        (Instance::new("b", "10.0.0.2:80"), failing(&calls)),
    ]);
    for e in set.load().iter() {
        e.state().set_transport_ready(false);
    }
    let retry = Retry::balanced(
        RoundRobin::new(set.clone()),
        RetryConfig::new(2, Duration::from_secs(1)),
    )
    .with_fail_fast(FailFast::new(set.clone(), Duration::from_secs(3)));
    // The outage starts: calls still try (panic mode picks not-ready endpoints).
    let error = retry.call(()).await.unwrap_err();
    assert_eq!(error.reason(), GaveUp::MaxAttempts);
    let tried = calls.load(Ordering::SeqCst);
    assert_eq!(tried, 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let error = retry.call(()).await.unwrap_err();
    assert_eq!(error.reason(), GaveUp::FailFast);
    assert_eq!(started.elapsed(), Duration::ZERO, "at once");
    assert!(error.final_error().unwrap().is::<FailFastError>());
    assert_eq!(calls.load(Ordering::SeqCst), tried, "no attempt made");
    // One endpoint is ready again: calls go through at once.
    set.load().get(1).unwrap().state().set_transport_ready(true);
    let error = retry.call(()).await.unwrap_err();
    assert_eq!(error.reason(), GaveUp::MaxAttempts);
    assert!(calls.load(Ordering::SeqCst) > tried);
}

#[tokio::test(start_paused = true)]
async fn an_empty_set_fails_fast_after_3s_instead_of_waiting_for_the_deadline() {
    let set: EndpointSet<Svc> = EndpointSet::fixed([]);
    let retry = Retry::balanced(
        RoundRobin::new(set.clone()),
        RetryConfig::new(5, Duration::from_secs(60)),
    )
    .with_fail_fast(FailFast::new(set, Duration::from_secs(3)));
    let started = Instant::now();
    let error = retry.call(()).await.unwrap_err();
    assert_eq!(error.reason(), GaveUp::FailFast);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let started = Instant::now();
    assert_eq!(retry.call(()).await.unwrap_err().reason(), GaveUp::FailFast);
    assert_eq!(started.elapsed(), Duration::ZERO);
}
