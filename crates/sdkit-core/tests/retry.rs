//! Retry: go-kit's cases (success on attempt k, max attempts, callback stop with replacement,
//! budget) and what go-kit gets wrong (spinning on an empty set, losing errors on timeout).

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sdkit_core::lb::{Balancer, PickContext, Picked, RoundRobin};
use sdkit_core::registrar::BoxFuture;
use sdkit_core::retry::{BudgetExhausted, Decision, GaveUp, Retry, RetryConfig, RetryLayer};
use sdkit_core::{
    Backoff, BalancedService, BoxError, EndpointSet, Endpointer, Instance, InstanceCache,
    NoEndpoints,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A service that fails its first `failures` calls.
fn failing_first(
    failures: u32,
    calls: Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future = impl Send> + Clone + Send {
    service_fn(move |req: u32| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= failures {
                Err::<u32, BoxError>(format!("failure {n}").into())
            } else {
                Ok(req * 2)
            }
        }
    })
}

fn config(max_attempts: u32, timeout: Duration) -> RetryConfig {
    RetryConfig::new(max_attempts, timeout).with_backoff(Backoff::new(
        Duration::from_millis(10),
        Duration::from_millis(100),
    ))
}

#[tokio::test(start_paused = true)]
async fn succeeds_on_attempt_k() {
    for k in 1..=4 {
        let calls = Arc::new(AtomicU32::new(0));
        let retry = Retry::new(
            failing_first(k - 1, calls.clone()),
            config(4, Duration::from_secs(10)),
        );
        assert_eq!(retry.call(21).await.unwrap(), 42);
        assert_eq!(calls.load(Ordering::SeqCst), k);
    }
}

#[tokio::test(start_paused = true)]
async fn stops_after_max_attempts_with_every_error() {
    let calls = Arc::new(AtomicU32::new(0));
    let retry = Retry::new(
        failing_first(100, calls.clone()),
        config(3, Duration::from_secs(10)),
    );
    let err = retry.call(1).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(err.reason(), GaveUp::MaxAttempts);
    let messages: Vec<String> = err.errors().iter().map(ToString::to_string).collect();
    assert_eq!(messages, ["failure 1", "failure 2", "failure 3"]);
    assert_eq!(err.source().unwrap().to_string(), "failure 3");
    assert!(err.to_string().contains("all 3 attempts failed"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_policy_can_stop_with_a_replacement_error() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(AtomicU32::new(0));
    let s = seen.clone();
    let retry = Retry::new(
        failing_first(100, calls.clone()),
        config(10, Duration::from_secs(10)),
    )
    .with_policy(move |attempt: u32, error: &BoxError| {
        s.store(attempt, Ordering::SeqCst);
        assert_eq!(error.to_string(), format!("failure {attempt}"));
        if attempt == 2 {
            Decision::Stop(Some("not retryable: bad request".into()))
        } else {
            Decision::Retry
        }
    });
    let err = retry.call(1).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(err.reason(), GaveUp::Policy);
    assert_eq!(err.errors().len(), 2);
    assert_eq!(
        err.final_error().unwrap().to_string(),
        "not retryable: bad request"
    );
    assert_eq!(
        err.source().unwrap().to_string(),
        "not retryable: bad request"
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_hanging_attempts_and_keeps_every_error() {
    // Two fast failures, then an attempt that hangs past the budget.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = service_fn(move |_req: u32| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= 2 {
                Err::<u32, BoxError>(format!("failure {n}").into())
            } else {
                std::future::pending().await
            }
        }
    });
    let start = tokio::time::Instant::now();
    let retry = Retry::new(svc, config(10, Duration::from_secs(2)));
    let err = retry.call(1).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(err.reason(), GaveUp::Timeout);
    assert_eq!(err.errors().len(), 3, "{err}");
    assert_eq!(err.errors()[0].to_string(), "failure 1");
    assert_eq!(err.errors()[1].to_string(), "failure 2");
    assert!(err.errors()[2].is::<BudgetExhausted>());
    assert!(
        err.to_string().contains("ran out after 3 attempt(s)"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_separates_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_jitter(0.0);
    let retry = Retry::new(
        failing_first(3, calls.clone()),
        RetryConfig::new(4, Duration::from_secs(10)).with_backoff(backoff),
    );
    let start = tokio::time::Instant::now();
    retry.call(1).await.unwrap();
    // 100 + 200 + 400 ms of backoff between four attempts.
    assert_eq!(start.elapsed(), Duration::from_millis(700));
}

/// Counts picks on an always-empty set.
struct CountingBalancer {
    inner: RoundRobin<tower::util::BoxCloneSyncService<u32, u32, BoxError>>,
    picks: Arc<AtomicU32>,
}

impl Balancer<tower::util::BoxCloneSyncService<u32, u32, BoxError>> for CountingBalancer {
    fn pick_with(
        &self,
        cx: &PickContext<'_>,
    ) -> Result<Picked<tower::util::BoxCloneSyncService<u32, u32, BoxError>>, NoEndpoints> {
        self.picks.fetch_add(1, Ordering::SeqCst);
        self.inner.pick_with(cx)
    }
    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        self.inner.endpoints_available()
    }
}

#[tokio::test(start_paused = true)]
async fn no_endpoints_waits_for_a_change_instead_of_spinning() {
    let picks = Arc::new(AtomicU32::new(0));
    let balancer = CountingBalancer {
        inner: RoundRobin::new(EndpointSet::fixed([])),
        picks: picks.clone(),
    };
    let retry = Retry::balanced(balancer, config(1_000_000, Duration::from_secs(5)));
    let err = retry.call(1).await.unwrap_err();
    assert_eq!(err.reason(), GaveUp::Timeout);
    assert_eq!(
        picks.load(Ordering::SeqCst),
        1,
        "one pick, then wait for the set to change"
    );
    assert!(err.errors()[0].is::<NoEndpoints>());
}

#[tokio::test(start_paused = true)]
async fn no_endpoints_without_a_change_signal_backs_off() {
    let picks = Arc::new(AtomicU32::new(0));
    let balancer = CountingBalancer {
        inner: RoundRobin::new(EndpointSet::fixed([])),
        picks: picks.clone(),
    };
    // A plain BalancedService (no change signal) under the layer: backoff 10 ms → 100 ms.
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config(1_000_000, Duration::from_secs(5))))
        .service(BalancedService::new(balancer));
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.reason(), GaveUp::Timeout);
    let n = picks.load(Ordering::SeqCst);
    // At least 50 ms between picks once the backoff is capped: at most ~110 picks in 5 s.
    assert!((5..=120).contains(&n), "{n} picks in 5 s");
}

#[tokio::test]
async fn a_retry_waiting_on_an_empty_set_succeeds_when_endpoints_appear() {
    let source = InstanceCache::new();
    source.update(vec![]);
    let endpointer = Endpointer::new(&source, |i: &Instance| {
        let addr = i.addr().to_owned();
        Ok::<_, BoxError>(tower::util::BoxCloneSyncService::new(service_fn(
            move |_req: u32| {
                let addr = addr.clone();
                async move { Ok::<_, BoxError>(addr) }
            },
        )))
    });
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    let retry = Retry::balanced(
        RoundRobin::new(endpointer.endpoint_set()),
        config(3, Duration::from_secs(30)),
    );
    let call = tokio::spawn(async move { retry.call(1).await });
    tokio::task::yield_now().await;
    source.update(vec![Instance::from_addr("10.1.1.1:80")]);
    let answer = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("retry did not wake up")
        .unwrap()
        .unwrap();
    assert_eq!(answer, "10.1.1.1:80");
}

/// A retry over a consistent-hashing balancer sends every call with one request hash to one
/// endpoint, keys spread over the endpoints, and when the key's endpoint fails the retry takes
/// another (it avoids the failed one) and the call succeeds; without a hash each call draws
/// its own.
#[tokio::test]
async fn a_request_hash_keeps_a_key_on_one_endpoint_and_a_retry_leaves_a_failed_one() {
    use sdkit_core::lb::hash::{Maglev, hash_key};
    use std::collections::{BTreeMap, BTreeSet};
    let broken = "10.0.0.3:80";
    let set = EndpointSet::fixed((1..=5).map(|i| {
        let addr = format!("10.0.0.{i}:80");
        let service = tower::util::BoxCloneSyncService::new(service_fn({
            let addr = addr.clone();
            move |_req: u32| {
                let addr = addr.clone();
                async move {
                    if addr == broken {
                        Err::<String, BoxError>("broken".into())
                    } else {
                        Ok(addr)
                    }
                }
            }
        }));
        (Instance::from_addr(addr), service)
    }));
    let retry = Retry::balanced(Maglev::new(set.clone()), config(3, Duration::from_secs(5)));
    // Where each key goes without failures: the balancer's own pick for the hash.
    let maglev = Maglev::new(set);
    let mut by_key: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut broken_keys = 0;
    for k in 0..200 {
        let hash = hash_key(format!("key-{k}").as_bytes());
        let home = maglev
            .pick_with(&PickContext::new().with_hash(hash))
            .unwrap();
        let home = home.service.clone().oneshot(0).await;
        for _ in 0..3 {
            let served = retry.call_with_hash(0, Some(hash)).await.expect("served");
            by_key.entry(hash).or_default().insert(served);
        }
        match home {
            Ok(addr) => assert_eq!(by_key[&hash], BTreeSet::from([addr]), "key {k}"),
            Err(_) => {
                broken_keys += 1;
                assert_eq!(by_key[&hash].len(), 1, "key {k}: {:?}", by_key[&hash]);
                assert!(!by_key[&hash].contains(broken));
            }
        }
    }
    assert!(broken_keys > 0, "some keys live on the broken endpoint");
    let reached: BTreeSet<&String> = by_key.values().flatten().collect();
    assert_eq!(reached.len(), 4, "{reached:?}");
    // No hash: calls spread.
    let mut unkeyed = BTreeSet::new();
    for _ in 0..100 {
        unkeyed.insert(retry.call(0).await.expect("served"));
    }
    assert!(unkeyed.len() >= 3, "{unkeyed:?}");
}
