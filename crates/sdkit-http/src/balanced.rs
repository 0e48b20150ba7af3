//! The balanced step of a call: pick an instance (avoiding those that already failed this call
//! while another is available), send one attempt, and record what happened.

use std::sync::Arc;
use std::task::{Context, Poll};

use sdkit_core::lb::Balancer;
use sdkit_core::registrar::BoxFuture;
use sdkit_core::{BoxError, NoEndpoints};

use crate::attempt::Call;
use crate::endpoint::Endpoint;

/// How many picks a call makes to find an endpoint it has not tried yet before it accepts one
/// it has (with one instance left, the retry goes back to it).
const AVOID_PICKS: usize = 4;

/// A `tower::Service<Call>` over a balancer: one attempt per call.
#[derive(Clone)]
pub(crate) struct Balanced {
    balancer: Arc<dyn Balancer<Endpoint>>,
}

impl Balanced {
    pub(crate) fn new(balancer: Arc<dyn Balancer<Endpoint>>) -> Self {
        Balanced { balancer }
    }

    fn pick(&self, call: &Call) -> Result<Endpoint, NoEndpoints> {
        let mut endpoint = self.balancer.pick()?;
        for _ in 1..AVOID_PICKS {
            if !call.tried(endpoint.id()) {
                break;
            }
            endpoint = self.balancer.pick()?;
        }
        Ok(endpoint)
    }
}

impl tower::Service<Call> for Balanced {
    type Response = reqwest::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<reqwest::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let picked = self.pick(&call);
        Box::pin(async move {
            let endpoint = picked?;
            let Some(request) = call.next_request() else {
                let mut error = crate::error::AttemptError::new(
                    endpoint.addr(),
                    crate::error::AttemptFailure::BodyNotReplayable,
                    None,
                );
                call.failed(endpoint.id(), &mut error);
                return Err(error.into());
            };
            match endpoint.send(request).await {
                Ok(mut response) => {
                    let served = call.served(endpoint.id(), endpoint.addr());
                    response.extensions_mut().insert(served);
                    Ok(response)
                }
                Err(mut error) => {
                    call.failed(endpoint.id(), &mut error);
                    Err(error.into())
                }
            }
        })
    }
}
