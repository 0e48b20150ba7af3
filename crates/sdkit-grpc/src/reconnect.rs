//! The reconnect task of one endpoint: after each failure it probes the address with backoff
//! (a transport connect, no request) until it answers, then marks the endpoint worth trying
//! again (see `conn_state`).

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use sdkit_core::Backoff;
use tokio::task::JoinHandle;

use crate::conn_state::ConnState;
use crate::connector::Connector;

/// Aborts the reconnect task when the last clone of an endpoint is dropped.
#[derive(Debug)]
pub(crate) struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Spawns the reconnect task of `state`: after each failure it probes `uri` through
/// `connector` with `backoff` until the address answers.
pub(crate) fn spawn_reconnect(
    state: Arc<ConnState>,
    connector: Connector,
    uri: Uri,
    backoff: Backoff,
    connect_timeout: Duration,
) -> TaskGuard {
    TaskGuard(tokio::spawn(async move {
        let mut delays = backoff.start();
        loop {
            state.failed().await;
            if state.take_reset_backoff() {
                delays.reset();
            }
            while !state.is_ready() {
                tokio::time::sleep(delays.next_delay()).await;
                if state.is_ready() {
                    break;
                }
                let probe = connector.connect(uri.clone());
                match tokio::time::timeout(connect_timeout, probe).await {
                    Ok(Ok(io)) => {
                        drop(io);
                        tracing::debug!(addr = %state.addr(), "grpc: endpoint answers again");
                        state.probe_ok();
                    }
                    Ok(Err(error)) => {
                        tracing::trace!(addr = %state.addr(), %error, "grpc: reconnect probe failed");
                    }
                    Err(_) => {
                        tracing::trace!(addr = %state.addr(), "grpc: reconnect probe timed out");
                    }
                }
            }
        }
    }))
}
