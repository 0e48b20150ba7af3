//! The reconnect task of one endpoint: after each failure it probes the address with backoff
//! until it answers, then marks the endpoint worth trying again (see `conn_state`).
//!
//! A probe is a transport connect and, on plaintext channels, the start of an HTTP/2
//! connection: the client preface and an empty SETTINGS frame out, the server's SETTINGS frame
//! in (RFC 9113 §3.4; gRPC-go's subchannel is not READY before it either). A port that accepts
//! connections but does not speak HTTP/2 — a process still starting, a proxy with no backend —
//! does not make the endpoint ready. No request is sent. On TLS channels the handshake lives
//! above the connector, so the probe is the transport connect alone.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use sdkit_core::{Backoff, BoxError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::conn_state::ConnState;
use crate::connector::{BoxedIo, Connector};

/// The HTTP/2 client connection preface followed by an empty SETTINGS frame.
const PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// The frame type of SETTINGS.
const SETTINGS: u8 = 0x4;
/// The ACK flag of a SETTINGS frame (an acknowledgement, not the server's own settings).
const ACK: u8 = 0x1;

/// Starts an HTTP/2 connection on `io`: the server's first frame must be its SETTINGS (not an
/// acknowledgement, on stream 0). Reads 9 bytes at most.
pub(crate) async fn speaks_http2(io: BoxedIo) -> Result<(), BoxError> {
    let mut io = TokioIo::new(io);
    io.write_all(PREFACE_AND_SETTINGS).await?;
    io.flush().await?;
    let mut header = [0u8; 9];
    io.read_exact(&mut header).await?;
    let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    if header[3] == SETTINGS && header[4] & ACK == 0 && stream == 0 {
        Ok(())
    } else {
        Err(format!(
            "the peer did not answer the HTTP/2 preface with its SETTINGS (first bytes {:02x?})",
            &header[..5]
        )
        .into())
    }
}

/// Aborts the reconnect task when the last clone of an endpoint is dropped.
#[derive(Debug)]
pub(crate) struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Spawns the reconnect task of `state`: after each failure it probes `uri` through
/// `connector` with `backoff` until the address answers (with HTTP/2 when `http2`: plaintext
/// channels). Each probe, handshake included, is bounded by `connect_timeout`.
pub(crate) fn spawn_reconnect(
    state: Arc<ConnState>,
    connector: Connector,
    uri: Uri,
    backoff: Backoff,
    connect_timeout: Duration,
    http2: bool,
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
                let connect = connector.connect(uri.clone());
                let probe = async {
                    let io = connect.await?;
                    if http2 {
                        speaks_http2(io).await
                    } else {
                        Ok(())
                    }
                };
                match tokio::time::timeout(connect_timeout, probe).await {
                    Ok(Ok(())) => {
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
