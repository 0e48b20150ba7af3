//! Feedback: what an endpoint tells the balancer about its instance.
//!
//! Every attempt's error is tagged with the core's failure class
//! ([`Classified`](sdkit_core::lb::Classified)): connect refused → connect failed, no answer in
//! time → timeout, 502/503/504 → unavailable, other 5xx → server error. The balancer's
//! [`CallGuard`](sdkit_core::lb::CallGuard) records it in the endpoint's
//! [`EndpointState`], so failure-aware balancers avoid the instance (design guide §7).
//!
//! Beyond outcomes, a connect failure says the instance is not reachable at all: the endpoint
//! marks its transport not ready (balancers skip it while enough others are ready) and probes
//! the address in the background — a TCP connect with backoff — until it answers, then marks
//! it ready again. Each refused probe is recorded as a connect failure (the endpoint's failure
//! count, and outlier detection when it watches the endpoint: an instance skipped as not ready
//! gets no calls that could tell it so). One probe per endpoint at a time; the probe ends when
//! the endpoint is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sdkit_core::Backoff;
use sdkit_core::lb::{EndpointState, FailureClass, Outcome};

/// How long one probe connect may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness side of an endpoint's state.
#[derive(Debug, Default)]
pub(crate) struct Feedback {
    state: Option<Arc<EndpointState>>,
    probing: Arc<AtomicBool>,
}

impl Feedback {
    /// Reports to `state`.
    pub(crate) fn new(state: Option<Arc<EndpointState>>) -> Self {
        Feedback {
            state,
            probing: Arc::default(),
        }
    }

    /// An attempt reached the instance: its transport is ready.
    #[inline]
    pub(crate) fn reached(&self) {
        if let Some(state) = &self.state
            && !state.is_transport_ready()
        {
            state.set_transport_ready(true);
        }
    }

    /// Connecting to `host:port` failed: mark the transport not ready and probe it until it
    /// answers, while `alive` (the endpoint) exists.
    pub(crate) fn connect_failed<T: Send + Sync + 'static>(
        &self,
        host: String,
        port: u16,
        alive: Weak<T>,
    ) {
        let Some(state) = &self.state else { return };
        state.set_transport_ready(false);
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, Ordering::Release);
            return;
        };
        let (state, probing) = (Arc::clone(state), Arc::clone(&self.probing));
        runtime.spawn(async move {
            let mut backoff =
                Backoff::new(Duration::from_millis(50), Duration::from_secs(2)).start();
            loop {
                tokio::time::sleep(backoff.next_delay()).await;
                if alive.strong_count() == 0 || state.is_transport_ready() {
                    break;
                }
                let connect = tokio::net::TcpStream::connect((host.as_str(), port));
                if let Ok(Ok(_)) = tokio::time::timeout(PROBE_TIMEOUT, connect).await {
                    state.set_transport_ready(true);
                    break;
                }
                state.record_outcome(Outcome::Failure(FailureClass::ConnectFailed));
            }
            probing.store(false, Ordering::Release);
        });
    }
}
