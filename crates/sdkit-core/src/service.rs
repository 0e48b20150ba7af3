//! A balancer as a `tower::Service`: each call picks an endpoint and calls it.
//!
//! ```
//! use sdkit_core::lb::RoundRobin;
//! use sdkit_core::{BalancedService, BoxError, EndpointSet, Instance};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let echo = service_fn(|req: u32| async move { Ok::<_, BoxError>(req + 1) });
//! let set = EndpointSet::fixed([(Instance::from_addr("10.0.0.1:80"), echo)]);
//! let service = BalancedService::new(RoundRobin::new(set));
//! assert_eq!(service.oneshot(41).await?, 42);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use crate::endpoint::EndpointKey;
use crate::error::BoxError;
use crate::lb::{Balancer, CallGuard, FailureClass, PickCache, PickContext};

/// Calls one endpoint picked by a [`Balancer`] per request. Cheap to clone.
///
/// Each call picks with [`Balancer::pick_with_cached`] (each handle keeps its own
/// [`PickCache`]: round-robin and random then pick for what indexing a slice costs, from the
/// handle's second call on; a clone starts with an empty cache) and ends the pick's
/// [`crate::lb::CallGuard`] with the call's outcome (errors classified by
/// [`FailureClass::of`](crate::lb::FailureClass::of)); a call dropped before it ends counts as
/// cancelled. A guard that reports nothing (round-robin and random while no outlier detector
/// watches the endpoint) is not kept at all.
///
/// Always ready: the endpoint's own readiness is awaited inside the returned future. With no
/// endpoints the call fails at once with [`NoEndpoints`](crate::NoEndpoints) (wrap it in a
/// [`Retry`](crate::retry::Retry) to wait).
pub struct BalancedService<B, S> {
    balancer: Arc<B>,
    /// Endpoints this handle's calls avoid (a retry's failed ones).
    avoid: Vec<EndpointKey>,
    /// The request hash of this handle's calls (consistent-hashing balancers).
    hash: Option<u64>,
    /// The endpoint of this handle's last call.
    last: Option<EndpointKey>,
    /// This handle's view of the set.
    cache: PickCache<S>,
}

impl<B, S> BalancedService<B, S> {
    /// Calls through `balancer`.
    pub fn new(balancer: B) -> Self {
        Self::from_arc(Arc::new(balancer))
    }

    /// Calls through a shared balancer.
    pub fn from_arc(balancer: Arc<B>) -> Self {
        BalancedService {
            balancer,
            avoid: Vec::new(),
            hash: None,
            last: None,
            cache: PickCache::new(),
        }
    }

    /// The balancer.
    pub fn balancer(&self) -> &Arc<B> {
        &self.balancer
    }

    /// Makes this handle's calls avoid `keys` while another ready endpoint exists.
    pub fn set_avoid(&mut self, keys: &[EndpointKey]) {
        self.avoid.clear();
        self.avoid.extend_from_slice(keys);
    }

    /// Gives this handle's calls `hash` as their request hash (`None`: none), which the
    /// consistent-hashing balancers ([`RingHash`](crate::lb::hash::RingHash),
    /// [`Maglev`](crate::lb::hash::Maglev)) map onto an endpoint; other balancers ignore it.
    pub fn set_hash(&mut self, hash: Option<u64>) {
        self.hash = hash;
    }

    /// The endpoint this handle's last call picked.
    pub fn last_picked(&self) -> Option<EndpointKey> {
        self.last
    }
}

impl<B, S> Clone for BalancedService<B, S> {
    fn clone(&self) -> Self {
        BalancedService {
            balancer: Arc::clone(&self.balancer),
            avoid: self.avoid.clone(),
            hash: self.hash,
            last: self.last,
            cache: PickCache::new(),
        }
    }
}

impl<B, S> fmt::Debug for BalancedService<B, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedService").finish_non_exhaustive()
    }
}

impl<B, S, Req> Service<Req> for BalancedService<B, S>
where
    B: Balancer<S>,
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let cx = PickContext::new()
            .with_avoid(&self.avoid)
            .with_optional_hash(self.hash);
        match self.balancer.pick_with_cached(&mut self.cache, &cx) {
            Ok(picked) => {
                self.last = Some(picked.key);
                // A guard that reports nothing owns nothing: forgetting it skips its drop.
                let guard = if picked.guard.is_tracking() {
                    Some(picked.guard)
                } else {
                    std::mem::forget(picked.guard);
                    None
                };
                ResponseFuture {
                    state: State::NotReady {
                        service: picked.service,
                        request: Some(request),
                    },
                    guard,
                }
            }
            Err(error) => ResponseFuture {
                state: State::Failed {
                    error: Some(error.into()),
                },
                guard: None,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`BalancedService`] call.
    pub struct ResponseFuture<S: Service<Req>, Req> {
        #[pin]
        state: State<S, Req>,
        guard: Option<CallGuard>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S: Service<Req>, Req> {
        // The picked endpoint, its readiness not yet polled.
        NotReady { service: S, request: Option<Req> },
        Called { #[pin] call: S::Future },
        Failed { error: Option<BoxError> },
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let result = match this.state.as_mut().project() {
                StateProj::NotReady { service, request } => {
                    match std::task::ready!(service.poll_ready(cx)) {
                        Ok(()) => match request.take() {
                            Some(request) => {
                                let call = service.call(request);
                                this.state.set(State::Called { call });
                                continue;
                            }
                            None => Err(completed()),
                        },
                        Err(error) => Err(error.into()),
                    }
                }
                StateProj::Called { call } => std::task::ready!(call.poll(cx)).map_err(Into::into),
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(completed)));
                }
            };
            // Each outcome returned from its own branch, the guard looked at only when there is
            // one: the success path moves the response out without a copy through memory.
            return Poll::Ready(match result {
                Ok(response) => {
                    if this.guard.is_some()
                        && let Some(guard) = this.guard.take()
                    {
                        guard.success();
                    }
                    Ok(response)
                }
                Err(error) => {
                    if let Some(guard) = this.guard.take() {
                        guard.failure(FailureClass::of(&error));
                    }
                    Err(error)
                }
            });
        }
    }
}

fn completed() -> BoxError {
    "BalancedService future polled after completion".into()
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
