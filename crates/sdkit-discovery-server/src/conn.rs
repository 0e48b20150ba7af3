//! One accepted connection: admission against the connection budget, then HTTP/1.1 with
//! read and write deadlines until it closes or the server shuts down.

use crate::http::{self, Caller};
use crate::io::WriteTimeout;
use crate::shared::{Shared, TaskGuard};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tracing::debug;

/// Largest request head (request line and headers): 64 KiB fits a `polls` of 256 appids.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The HTTP/1.1 settings every connection uses.
pub(crate) fn http(shared: &Shared) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(shared.config.read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    http
}

/// Admits `stream` from `peer` into `tasks`, or refuses it (HTTP 503 naming the limit,
/// written without waiting, then closed).
pub(crate) fn admit(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    http: &http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let permit = match shared.connections.acquire(peer.ip(), 1) {
        Ok(permit) => permit,
        Err(refused) => {
            shared
                .stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            debug!(%peer, %refused, "connection refused");
            let body = format!(r#"{{"code":-509,"message":"{refused}"}}"#);
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.try_write(answer.as_bytes());
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let guard = TaskGuard::new(shared);
    let shared = Arc::clone(shared);
    let http = http.clone();
    tasks.spawn(async move {
        let _guard = guard;
        let _permit = permit;
        serve(shared, &http, stream, peer).await;
    });
}

async fn serve(shared: Arc<Shared>, http: &http1::Builder, stream: TcpStream, peer: SocketAddr) {
    let caller = Caller::new(&shared, peer.ip());
    let io = WriteTimeout::new(TokioIo::new(stream), shared.config.write_timeout);
    let svc_shared = Arc::clone(&shared);
    let service = service_fn(move |req| {
        let shared = Arc::clone(&svc_shared);
        async move {
            let route = crate::requests::Route::of(req.uri().path());
            let resp = http::handle(&shared, req, caller).await;
            shared.requests.record(route, &resp);
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}
