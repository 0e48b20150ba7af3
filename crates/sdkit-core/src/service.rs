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
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use crate::endpoint::EndpointKey;
use crate::error::BoxError;
use crate::lb::{Balancer, CallGuard, PickContext};

/// Calls one endpoint picked by a [`Balancer`] per request. Cheap to clone.
///
/// Each call picks with [`Balancer::pick_with`] and ends the pick's
/// [`CallGuard`](crate::lb::CallGuard) with the call's outcome (errors classified by
/// [`FailureClass::of`](crate::lb::FailureClass::of)); a call dropped before it ends counts as
/// cancelled.
///
/// Always ready: the endpoint's own readiness is awaited inside the returned future. With no
/// endpoints the call fails at once with [`NoEndpoints`](crate::NoEndpoints) (wrap it in a
/// [`Retry`](crate::retry::Retry) to wait).
pub struct BalancedService<B, S> {
    balancer: Arc<B>,
    /// Endpoints this handle's calls avoid (a retry's failed ones).
    avoid: Vec<EndpointKey>,
    /// The endpoint of this handle's last call.
    last: Option<EndpointKey>,
    _service: PhantomData<fn() -> S>,
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
            last: None,
            _service: PhantomData,
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
            last: self.last,
            _service: PhantomData,
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

    fn call(&mut self, request: Req) -> Self::Future {
        let cx = PickContext::new().with_avoid(&self.avoid);
        let state = match self.balancer.pick_with(&cx) {
            Ok(picked) => {
                self.last = Some(picked.key);
                State::Call {
                    call: picked.service.oneshot(request),
                    guard: Some(picked.guard),
                }
            }
            Err(error) => State::Failed {
                error: Some(error.into()),
            },
        };
        ResponseFuture { state }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`BalancedService`] call.
    pub struct ResponseFuture<S: Service<Req>, Req> {
        #[pin]
        state: State<S, Req>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S: Service<Req>, Req> {
        Call { #[pin] call: Oneshot<S, Req>, guard: Option<CallGuard> },
        Failed { error: Option<BoxError> },
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Call { call, guard } => {
                let result = std::task::ready!(call.poll(cx)).map_err(Into::into);
                if let Some(guard) = guard.take() {
                    guard.finish_result(&result);
                }
                Poll::Ready(result)
            }
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "BalancedService future polled after completion".into()))),
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
