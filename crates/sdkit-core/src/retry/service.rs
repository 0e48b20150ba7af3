//! [`Retry`], the `tower::Service` that runs the attempts, and [`RetryLayer`], which builds it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::endpoint::EndpointKey;
use crate::error::{BoxError, NoEndpoints};
use crate::fail_fast::{FailFast, FailFastError};
use crate::hedge::Hedge;
use crate::lb::Balancer;
use crate::metrics::{Exhausted, Labels, RetryMetrics};
use crate::registrar::BoxFuture;
use crate::service::BalancedService;

use super::error::{BudgetExhausted, GaveUp, RetryError};
use super::policy::{Decision, Policy, RetryAll, RetryBudget, RetryConfig};

type Wake = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// What a retry over a [`BalancedService`] knows beyond a plain service: how to wait for
/// endpoints, which endpoint an attempt used, and how to avoid the failed ones.
struct Balanced<S> {
    wake: Wake,
    last_picked: fn(&S) -> Option<EndpointKey>,
    set_avoid: fn(&mut S, &[EndpointKey]),
    set_hash: fn(&mut S, Option<u64>),
    hedge: Option<Arc<Hedge>>,
    fail_fast: Option<FailFastHook>,
}

/// A [`FailFast`] without its endpoint type.
#[derive(Clone)]
struct FailFastHook {
    check: Arc<dyn Fn() -> Result<(), FailFastError> + Send + Sync>,
    after: Duration,
}

impl<S> Clone for Balanced<S> {
    fn clone(&self) -> Self {
        Balanced {
            wake: Arc::clone(&self.wake),
            last_picked: self.last_picked,
            set_avoid: self.set_avoid,
            set_hash: self.set_hash,
            hedge: self.hedge.clone(),
            fail_fast: self.fail_fast.clone(),
        }
    }
}

/// Calls an inner service with retries. See the [module docs](super).
pub struct Retry<S, P = RetryAll> {
    inner: S,
    config: RetryConfig,
    policy: Arc<P>,
    balanced: Option<Balanced<S>>,
    budget: Option<Arc<dyn RetryBudget>>,
    metrics: RetryMetrics,
}

impl<S: Clone, P> Clone for Retry<S, P> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            config: self.config,
            policy: Arc::clone(&self.policy),
            balanced: self.balanced.clone(),
            budget: self.budget.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Retry<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S> Retry<S, RetryAll> {
    /// Retries calls to `inner` (each call should pick a fresh endpoint, as a
    /// [`BalancedService`] does).
    pub fn new(inner: S, config: RetryConfig) -> Self {
        Retry {
            inner,
            config,
            policy: Arc::new(RetryAll),
            balanced: None,
            budget: None,
            metrics: RetryMetrics::new(&Labels::default()),
        }
    }
}

impl<B, E> Retry<BalancedService<B, E>, RetryAll> {
    /// Retries through `balancer`: each attempt picks an endpoint, avoiding those that failed
    /// earlier attempts of the same call while another ready one exists; with no endpoints,
    /// the retry waits for the set to change rather than for its backoff.
    pub fn balanced(balancer: B, config: RetryConfig) -> Self
    where
        B: Balancer<E> + 'static,
    {
        let balancer = Arc::new(balancer);
        let watcher = Arc::clone(&balancer);
        Retry {
            inner: BalancedService::from_arc(balancer),
            config,
            policy: Arc::new(RetryAll),
            balanced: Some(Balanced {
                wake: Arc::new(move || watcher.endpoints_available()),
                last_picked: BalancedService::last_picked,
                set_avoid: BalancedService::set_avoid,
                set_hash: BalancedService::set_hash,
                hedge: None,
                fail_fast: None,
            }),
            budget: None,
            metrics: RetryMetrics::new(&Labels::default()),
        }
    }
}

impl<B, E, P> Retry<BalancedService<B, E>, P> {
    /// Hedges each attempt (for idempotent requests only): once `hedge`'s delay passes without
    /// an answer, a second attempt goes to another endpoint, the first success wins and the
    /// other attempt is cancelled. A hedge is taken from the [`RetryBudget`] like a retry.
    pub fn with_hedge(mut self, hedge: Arc<Hedge>) -> Self {
        if let Some(b) = &mut self.balanced {
            b.hedge = Some(hedge);
        }
        self
    }

    /// Fails calls at once (with a [`FailFastError`], [`GaveUp::FailFast`]) while `fail_fast`
    /// says no endpoint has been ready for its time; they go ahead again as soon as one is.
    pub fn with_fail_fast(mut self, fail_fast: FailFast<E>) -> Self
    where
        E: Send + Sync + 'static,
    {
        if let Some(b) = &mut self.balanced {
            let after = fail_fast.after();
            let fail_fast = Arc::new(fail_fast);
            b.fail_fast = Some(FailFastHook {
                check: Arc::new(move || fail_fast.check()),
                after,
            });
        }
        self
    }
}

impl<S, P> Retry<S, P> {
    /// Replaces the policy.
    pub fn with_policy<Q: Policy>(self, policy: Q) -> Retry<S, Q> {
        Retry {
            inner: self.inner,
            config: self.config,
            policy: Arc::new(policy),
            balanced: self.balanced,
            budget: self.budget,
            metrics: self.metrics,
        }
    }

    /// Labels this retry's [metrics](crate::metrics) (attempts, retries, hedges, budget
    /// exhausted, `rpc.client.call.duration`) and `attempt` spans; unlabelled by default.
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.metrics = RetryMetrics::new(&labels);
        self
    }

    /// Caps retries with a budget shared by every clone.
    pub fn with_budget(mut self, budget: Arc<dyn RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Calls with retries.
    ///
    /// # Errors
    ///
    /// A [`RetryError`] with every attempt's error when no attempt succeeded.
    pub fn call<Req>(&self, request: Req) -> BoxFuture<'static, Result<S::Response, RetryError>>
    where
        S: Service<Req> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
        S::Response: Send,
        Req: Clone + Send + 'static,
        P: Policy,
    {
        self.call_with_hash(request, None)
    }

    /// [`call`](Self::call) with a request hash: every attempt of a retry over a balancer
    /// ([`Retry::balanced`]) picks with `hash`, so a consistent-hashing balancer sends the call
    /// to the key's endpoint (a retry that avoids a failed one takes the key's next). Ignored
    /// by other retries and other balancers.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn call_with_hash<Req>(
        &self,
        request: Req,
        hash: Option<u64>,
    ) -> BoxFuture<'static, Result<S::Response, RetryError>>
    where
        S: Service<Req> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
        S::Response: Send,
        Req: Clone + Send + 'static,
        P: Policy,
    {
        let metrics = self.metrics.clone();
        let call = run(
            self.inner.clone(),
            self.config,
            Arc::clone(&self.policy),
            self.balanced.clone(),
            self.budget.clone(),
            (request, hash),
            self.metrics.clone(),
        );
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let result = call.await;
            metrics.call(started.elapsed().as_secs_f64());
            result
        })
    }
}

async fn run<S, P, Req>(
    inner: S,
    config: RetryConfig,
    policy: Arc<P>,
    balanced: Option<Balanced<S>>,
    budget: Option<Arc<dyn RetryBudget>>,
    (request, hash): (Req, Option<u64>),
    metrics: RetryMetrics,
) -> Result<S::Response, RetryError>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
    P: Policy,
{
    let deadline = tokio::time::Instant::now() + config.timeout;
    let mut errors: Vec<BoxError> = Vec::new();
    let mut backoff = config.backoff.start();
    let give_up = |errors, reason, replacement| RetryError {
        errors,
        reason,
        replacement,
        budget: config.timeout,
    };
    if let Some(budget) = &budget {
        budget.deposit();
    }
    let mut failed: Vec<EndpointKey> = Vec::new();
    let hedge = balanced.as_ref().and_then(|b| b.hedge.as_deref());
    let fail_fast = balanced.as_ref().and_then(|b| b.fail_fast.as_ref());
    for attempt in 1..=config.max_attempts {
        if let Some(Err(error)) = fail_fast.map(|f| (f.check)()) {
            errors.push(Box::new(error));
            return Err(give_up(errors, GaveUp::FailFast, None));
        }
        let started = tokio::time::Instant::now();
        let primary_key = Mutex::new(None);
        metrics.attempt(attempt);
        let span = metrics.attempt_span(attempt);
        let primary = attempt_once(
            inner.clone(),
            &balanced,
            (failed.clone(), hash),
            request.clone(),
            Some(&primary_key),
        )
        .instrument(span.clone());
        // Owned copies for the hedge (only when hedging), so the attempt future stays `Send`.
        let spare = hedge.map(|_| (inner.clone(), request.clone()));
        let call = crate::hedge::race(primary, hedge.and_then(Hedge::delay), || {
            let (service, request) = spare?;
            if budget.as_ref().is_some_and(|b| !b.withdraw()) {
                return None;
            }
            let mut avoid = failed.clone();
            avoid.extend(*primary_key.lock().unwrap_or_else(PoisonError::into_inner));
            metrics.hedge();
            Some(attempt_once(service, &balanced, (avoid, hash), request, None).instrument(span))
        });
        let error: BoxError = match tokio::time::timeout_at(deadline, call).await {
            Ok((Ok(response), _)) => {
                if let Some(budget) = &budget {
                    budget.record(true);
                }
                if let Some(hedge) = hedge {
                    hedge.record(started.elapsed());
                }
                return Ok(response);
            }
            Ok((Err((picked, error)), _)) => {
                if let Some(budget) = &budget {
                    budget.record(false);
                }
                if let Some(key) = picked
                    && !failed.contains(&key)
                {
                    failed.push(key);
                }
                error
            }
            Err(_) => {
                errors.push(Box::new(BudgetExhausted {
                    budget: config.timeout,
                }));
                metrics.exhausted(Exhausted::Deadline);
                return Err(give_up(errors, GaveUp::Timeout, None));
            }
        };
        let no_endpoints = error.is::<NoEndpoints>();
        let decision = policy.decide(attempt, &error);
        errors.push(error);
        if let Decision::Stop(replacement) = decision {
            return Err(give_up(errors, GaveUp::Policy, replacement));
        }
        if attempt == config.max_attempts {
            break;
        }
        if let Some(budget) = &budget
            && !budget.withdraw()
        {
            metrics.exhausted(Exhausted::RetryBudget);
            return Err(give_up(errors, GaveUp::Budget, None));
        }
        let wait: Pin<Box<dyn Future<Output = ()> + Send>> = match (&balanced, no_endpoints) {
            // Waiting for endpoints ends at the fail-fast time, so the next check can fail fast.
            (Some(b), true) => match &b.fail_fast {
                Some(f) => {
                    let wake = (b.wake)();
                    let after = f.after;
                    Box::pin(async move {
                        let _ = tokio::time::timeout(after, wake).await;
                    })
                }
                None => (b.wake)(),
            },
            _ => Box::pin(tokio::time::sleep(backoff.next_delay())),
        };
        if tokio::time::timeout_at(deadline, wait).await.is_err() {
            metrics.exhausted(Exhausted::Deadline);
            return Err(give_up(errors, GaveUp::Timeout, None));
        }
    }
    Err(give_up(errors, GaveUp::MaxAttempts, None))
}

/// One attempt: picks (avoiding `avoid`, with the request hash `hash`), notes the picked
/// endpoint in `picked_slot`, calls.
async fn attempt_once<S, Req>(
    mut service: S,
    balanced: &Option<Balanced<S>>,
    (avoid, hash): (Vec<EndpointKey>, Option<u64>),
    request: Req,
    picked_slot: Option<&Mutex<Option<EndpointKey>>>,
) -> Result<S::Response, (Option<EndpointKey>, BoxError)>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    if let Some(b) = balanced {
        (b.set_avoid)(&mut service, &avoid);
        (b.set_hash)(&mut service, hash);
    }
    service.ready().await.map_err(|e| (None, e.into()))?;
    let future = service.call(request);
    let picked = balanced.as_ref().and_then(|b| (b.last_picked)(&service));
    if let Some(slot) = picked_slot {
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = picked;
    }
    future.await.map_err(|e| (picked, e.into()))
}

impl<S, P, Req> Service<Req> for Retry<S, P>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    S::Response: Send,
    Req: Clone + Send + 'static,
    P: Policy,
{
    type Response = S::Response;
    type Error = RetryError;
    type Future = BoxFuture<'static, Result<S::Response, RetryError>>;

    /// Always ready: readiness of the inner service is awaited inside each attempt.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        Retry::call(self, request)
    }
}

/// A `tower::Layer` that wraps a service in a [`Retry`].
pub struct RetryLayer<P = RetryAll> {
    config: RetryConfig,
    policy: Arc<P>,
}

impl<P> Clone for RetryLayer<P> {
    fn clone(&self) -> Self {
        RetryLayer {
            config: self.config,
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<P> fmt::Debug for RetryLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RetryLayer<RetryAll> {
    /// Retries every error, per `config`.
    pub fn new(config: RetryConfig) -> Self {
        RetryLayer {
            config,
            policy: Arc::new(RetryAll),
        }
    }
}

impl<P> RetryLayer<P> {
    /// Replaces the policy.
    pub fn with_policy<Q: Policy>(self, policy: Q) -> RetryLayer<Q> {
        RetryLayer {
            config: self.config,
            policy: Arc::new(policy),
        }
    }
}

impl<S, P> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            config: self.config,
            policy: Arc::clone(&self.policy),
            balanced: None,
            budget: None,
            metrics: RetryMetrics::new(&Labels::default()),
        }
    }
}
