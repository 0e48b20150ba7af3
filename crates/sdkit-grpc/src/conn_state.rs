//! Connection state of one endpoint: ready or failed (the background reconnect that probes a
//! failed endpoint is in `reconnect`).
//!
//! A fresh endpoint is *idle* and counts as ready: its channel connects lazily, on the first
//! call. The watching connector reports what happens next:
//!
//! * a connect that succeeds → **ready** (and the reconnect backoff starts over);
//! * a connect that fails, or a live connection that ends (peer gone, I/O error, GOAWAY) →
//!   **failed**: pickers skip the endpoint while another one is ready, and the endpoint's
//!   reconnect task probes the address with backoff (a connect and, on plaintext channels, the
//!   start of an HTTP/2 connection; no request) until it answers, then marks the endpoint
//!   ready again; the channel itself reconnects on its next call.
//!
//! Every change bumps a channel-wide counter, on which calls waiting for a ready endpoint sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use sdkit_core::lb::EndpointState;
use tokio::sync::{Notify, watch};

const IDLE: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;

/// The readiness of one endpoint's connection. Shared by its channel's connector, its reconnect
/// task and the pickers.
#[derive(Debug)]
pub(crate) struct ConnState {
    addr: Arc<str>,
    state: AtomicU8,
    /// Counts successful connects; a closed connection only fails the endpoint if no newer one
    /// exists.
    generation: AtomicU64,
    /// Set by a successful real connect: the next failure episode starts with the first delay.
    reset_backoff: AtomicBool,
    /// Wakes the reconnect task on a failure.
    failed: Notify,
    /// The channel-wide readiness counter.
    changed: Arc<watch::Sender<u64>>,
    /// The endpoint's shared state in sdkit-core: its transport bit mirrors this state, so
    /// sdkit's balancers (and outlier detection, health checks) see what the transport sees.
    endpoint: Option<Arc<EndpointState>>,
}

impl ConnState {
    pub(crate) fn new(
        addr: impl Into<Arc<str>>,
        changed: Arc<watch::Sender<u64>>,
        endpoint: Option<Arc<EndpointState>>,
    ) -> Self {
        ConnState {
            addr: addr.into(),
            state: AtomicU8::new(IDLE),
            generation: AtomicU64::new(0),
            reset_backoff: AtomicBool::new(false),
            failed: Notify::new(),
            changed,
            endpoint,
        }
    }

    /// The address, for messages.
    pub(crate) fn addr(&self) -> &Arc<str> {
        &self.addr
    }

    /// `false` once a connect failed or the connection ended, until it answers again.
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        self.state.load(Ordering::Relaxed) != FAILED
    }

    /// `true` once a connection was established and is still up.
    pub(crate) fn is_connected(&self) -> bool {
        self.state.load(Ordering::Relaxed) == READY
    }

    fn set(&self, state: u8) {
        if self.state.swap(state, Ordering::AcqRel) != state {
            if let Some(endpoint) = &self.endpoint {
                endpoint.set_transport_ready(state != FAILED);
            }
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
        if state == FAILED {
            self.failed.notify_one();
        }
    }

    /// A real connect succeeded; returns the connection's generation.
    pub(crate) fn connected(&self) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.reset_backoff.store(true, Ordering::Relaxed);
        self.set(READY);
        generation
    }

    /// A real connect failed.
    pub(crate) fn connect_failed(&self) {
        tracing::debug!(addr = %self.addr, "grpc: connect failed; endpoint not ready");
        self.set(FAILED);
    }

    /// Connection `generation` ended.
    pub(crate) fn closed(&self, generation: u64) {
        if self.generation.load(Ordering::Acquire) == generation
            && self.state.load(Ordering::Acquire) == READY
        {
            tracing::debug!(addr = %self.addr, "grpc: connection closed; endpoint not ready");
            self.set(FAILED);
        }
    }

    /// Waits for the next failure (at once if one happened since the last wait).
    pub(crate) async fn failed(&self) {
        self.failed.notified().await;
    }

    /// `true` once after a successful real connect: the next failure episode starts its
    /// backoff over.
    pub(crate) fn take_reset_backoff(&self) -> bool {
        self.reset_backoff.swap(false, Ordering::Relaxed)
    }

    /// The probe answered: the endpoint is worth trying again.
    pub(crate) fn probe_ok(&self) {
        if self.state.load(Ordering::Acquire) == FAILED {
            self.set(IDLE);
        }
    }
}
