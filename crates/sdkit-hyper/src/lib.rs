//! # sdkit-hyper
//!
//! The HTTP plumbing sdkit's hyper-based clients share — the Consul client, the discovery
//! client and the `sdkit` CLI's endpoints — written once:
//!
//! * [`pooled`]: a hyper-util legacy client (connection pool, idle connections kept for a
//!   while) over any connector; [`connector`] is the plain TCP connector with a connect
//!   timeout and `TCP_NODELAY`, [`plain`] both together.
//! * [`exchange`]: one request, bounded twice — the whole exchange (sending, waiting, reading
//!   the body) by a timeout, the body by a size limit — answered as a [`Response`] whose body is
//!   read in full, or an [`ExchangeError`].
//! * [`ExchangeError`]: the one error shape — transport failure, timeout, body too large — that
//!   each client wraps in its own error type with its own context (node, endpoint, agent).
//!
//! Status codes are the caller's business: a 500 is a [`Response`], not an error.
//!
//! The reqwest-based `sdkit-http` crate (wave 2) can share [`ExchangeError`] as its error
//! shape, or replace this crate entirely: nothing here is specific to a registry.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use sdkit_hyper::{Body, ExchangeError, exchange, plain};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let client = plain(Duration::from_secs(1));
//! // Port 9 on loopback: nothing listens, so the exchange fails as a transport error.
//! let request = http::Request::get("http://127.0.0.1:9/").body(Body::new(Bytes::new())).unwrap();
//! let error = exchange(&client, request, Duration::from_secs(5), 1 << 20).await.unwrap_err();
//! assert!(matches!(error, ExchangeError::Transport(_)));
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

/// The request body every sdkit client sends: the whole body in one buffer.
pub type Body = Full<Bytes>;

/// A pooled client over plain TCP.
pub type PlainClient = Client<HttpConnector, Body>;

/// A boxed error, `Send + Sync`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The plain TCP connector: `connect_timeout` per connection, `TCP_NODELAY`, any URI scheme
/// accepted (a TLS wrapper decides what `https://` means).
pub fn connector(connect_timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    connector
}

/// A pooled client over `connector` (HTTP/1.1; idle connections kept [`POOL_IDLE_TIMEOUT`]).
pub fn pooled<C>(connector: C) -> Client<C, Body>
where
    C: Connect + Clone,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// A pooled client over plain TCP: [`pooled`]`(`[`connector`]`(connect_timeout))`.
pub fn plain(connect_timeout: Duration) -> PlainClient {
    pooled(connector(connect_timeout))
}

/// An answer, its body read in full.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Response {
    /// The status (any: status codes are the caller's business).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most the `max_body` given to [`exchange`].
    pub body: Bytes,
}

/// Why an [`exchange`] failed. Each client wraps it with its own context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// Connecting, sending, or reading failed.
    #[error("transport: {}", chain(.0.as_ref()))]
    Transport(#[source] BoxError),
    /// The whole exchange took longer than the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The body was larger than allowed.
    #[error("body larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

/// An error and its causes on one line (hyper's own messages are terse: "client error
/// (Connect)").
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Sends `request` through `client` and reads the answer's body, the whole exchange bounded by
/// `timeout` and the body by `max_body` bytes. See the [crate docs](crate).
///
/// # Errors
///
/// [`ExchangeError::Transport`], [`ExchangeError::Timeout`] or [`ExchangeError::TooLarge`].
pub async fn exchange<C>(
    client: &Client<C, Body>,
    request: Request<Body>,
    timeout: Duration,
    max_body: usize,
) -> Result<Response, ExchangeError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| ExchangeError::Transport(Box::new(e)))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    ExchangeError::TooLarge { max: max_body }
                } else {
                    ExchangeError::Transport(e)
                }
            })?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ExchangeError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot server answering `reply` to the first request.
    async fn serve_once(reply: Vec<u8>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(&reply).await;
            // Keep the connection open: a silent server for the timeout case.
            let _ = socket.read(&mut buf).await;
        });
        addr
    }

    fn get(addr: std::net::SocketAddr) -> Request<Body> {
        Request::get(format!("http://{addr}/"))
            .body(Body::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn reads_any_status_and_the_body() {
        let addr = serve_once(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nx-a: b\r\n\r\nbusy".to_vec(),
        )
        .await;
        let client = plain(Duration::from_secs(1));
        let response = exchange(&client, get(addr), Duration::from_secs(10), 100)
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers["x-a"], "b");
        assert_eq!(&response.body[..], b"busy");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let addr =
            serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789".to_vec()).await;
        let client = plain(Duration::from_secs(1));
        let error = exchange(&client, get(addr), Duration::from_secs(10), 4)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ExchangeError::TooLarge { max: 4 }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let addr = serve_once(Vec::new()).await;
        let client = plain(Duration::from_secs(1));
        let error = exchange(&client, get(addr), Duration::from_millis(200), 100)
            .await
            .unwrap_err();
        assert!(matches!(error, ExchangeError::Timeout(_)), "{error}");
        assert_eq!(error.to_string(), "timed out after 200ms");
    }
}
