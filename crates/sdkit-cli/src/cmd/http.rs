//! HTTP for `call` and `demo`: the per-instance client endpoint (a `tower::Service`) and the
//! small backend server the demo runs.
//!
//! Every endpoint shares one hyper-util legacy client (connection pool); an endpoint is that
//! client's clone plus the instance's base URI, so making one is cheap and connects lazily.
//! Response bodies are read up to [`MAX_BODY`] bytes; each attempt has its own timeout.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sdkit::BoxFuture;
use sdkit::lb::{Classified, FailureClass};
use sdkit::{BoxError, Instance};
use sdkit_hyper::ExchangeError;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Largest response body read; a longer one fails the attempt.
pub const MAX_BODY: usize = 1 << 20;

/// The shared HTTP/1 client (`sdkit-hyper`'s pooled client).
pub type HttpClient = sdkit_hyper::PlainClient;

/// A new pooled client with a connect timeout.
pub fn client(connect_timeout: Duration) -> HttpClient {
    sdkit_hyper::plain(connect_timeout)
}

/// Told about every attempt: the instance's address and whether the attempt succeeded.
pub type AttemptHook = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// A successful reply (2xx or 3xx, body read within [`MAX_BODY`]): which instance served it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The serving instance's address.
    pub addr: Arc<str>,
}

/// An HTTP error status (4xx or 5xx) from an instance.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{addr}: HTTP {status}")]
pub struct StatusError {
    /// The instance.
    pub addr: Arc<str>,
    /// The status.
    pub status: StatusCode,
}

/// A failed attempt (connection, timeout, body) on one instance.
#[derive(Debug, thiserror::Error)]
#[error("{addr}: {message}")]
pub struct AttemptError {
    /// The instance.
    pub addr: Arc<str>,
    /// What went wrong.
    pub message: String,
}

/// One GET request: the path, and a count of the attempts made for it (shared by the clones
/// the retry makes, so the caller learns how many attempts a success took).
#[derive(Debug, Clone)]
pub struct Get {
    path: Arc<str>,
    attempts: Arc<std::sync::atomic::AtomicU32>,
}

impl Get {
    /// A request for `path`.
    pub fn new(path: Arc<str>) -> Get {
        Get {
            path,
            attempts: Arc::default(),
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The endpoint of one instance: `GET {base}{path}`.
#[derive(Clone)]
pub struct HttpEndpoint {
    client: HttpClient,
    base: Arc<str>,
    addr: Arc<str>,
    timeout: Duration,
    on_attempt: Option<AttemptHook>,
}

impl fmt::Debug for HttpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpEndpoint")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A `call`/`demo` endpoint factory for the endpointer: one [`HttpEndpoint`] per instance.
///
/// `on_attempt(addr, ok)` is told about every attempt (for per-instance statistics).
pub fn factory(
    client: HttpClient,
    timeout: Duration,
    on_attempt: Option<AttemptHook>,
) -> impl Fn(&Instance) -> Result<HttpEndpoint, BoxError> + Send + Sync + 'static {
    move |instance: &Instance| {
        let addr = instance.addr();
        let base = if addr.contains("://") {
            addr.trim_end_matches('/').to_owned()
        } else {
            format!("http://{addr}")
        };
        // Validate once here, so a bad address is skipped by the endpointer (and logged).
        let _: hyper::Uri = format!("{base}/")
            .parse()
            .map_err(|e| format!("instance {}: bad address `{addr}`: {e}", instance.id()))?;
        Ok(HttpEndpoint {
            client: client.clone(),
            base: base.into(),
            addr: addr.into(),
            timeout,
            on_attempt: on_attempt.clone(),
        })
    }
}

impl tower::Service<Get> for HttpEndpoint {
    type Response = Reply;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Reply, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The legacy client is always ready (it queues on its pool).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Get) -> Self::Future {
        let this = self.clone();
        request
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            let result = match tokio::time::timeout(this.timeout, this.get(&request.path)).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(Classified::new(
                    FailureClass::Timeout,
                    AttemptError {
                        addr: this.addr.clone(),
                        message: format!(
                            "timed out after {}",
                            sdkit::duration::format(this.timeout)
                        ),
                    },
                )) as BoxError),
            };
            if let Some(on_attempt) = &this.on_attempt {
                on_attempt(&this.addr, result.is_ok());
            }
            result
        })
    }
}

impl HttpEndpoint {
    async fn get(&self, path: &str) -> Result<Reply, BoxError> {
        let fail = |message: String| -> BoxError {
            Box::new(AttemptError {
                addr: self.addr.clone(),
                message,
            })
        };
        let slash = if path.starts_with('/') { "" } else { "/" };
        let uri: hyper::Uri = format!("{}{slash}{path}", self.base)
            .parse()
            .map_err(|e| fail(format!("bad path `{path}`: {e}")))?;
        let request = Request::get(uri)
            .body(sdkit_hyper::Body::new(Bytes::new()))
            .map_err(|e| fail(format!("bad request: {e}")))?;
        // The attempt's own timeout bounds the exchange (see `call`); this one only backs it.
        let response = sdkit_hyper::exchange(&self.client, request, self.timeout, MAX_BODY)
            .await
            .map_err(|e| {
                // Classified for outlier detection: connect and transport errors, timeouts.
                let (class, error) = match e {
                    ExchangeError::Transport(source) => {
                        let text = sdkit_hyper::chain(source.as_ref());
                        let class = if text.contains("Connect") || text.contains("connect") {
                            FailureClass::ConnectFailed
                        } else {
                            FailureClass::Unavailable
                        };
                        (class, fail(text))
                    }
                    ExchangeError::TooLarge { max } => (
                        FailureClass::Other,
                        fail(format!("reading the body: body larger than {max} bytes")),
                    ),
                    other => (FailureClass::Timeout, fail(other.to_string())),
                };
                BoxError::from(Classified::new(class, error))
            })?;
        let status = response.status;
        if status.is_client_error() || status.is_server_error() {
            let error = StatusError {
                addr: self.addr.clone(),
                status,
            };
            return Err(match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    Box::new(Classified::new(FailureClass::Unavailable, error))
                }
                s if s.is_server_error() => {
                    Box::new(Classified::new(FailureClass::ServerError, error))
                }
                _ => Box::new(error),
            });
        }
        Ok(Reply {
            addr: self.addr.clone(),
        })
    }
}

/// A small HTTP backend: answers every GET with `hello from <name>`. Dropping (or
/// [`kill`](Self::kill)ing) it closes the listener and every open connection at once, as a
/// crash would.
#[derive(Debug)]
pub struct Backend {
    name: String,
    addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Backend {
    /// Starts a backend named `name` on a free port of 127.0.0.1.
    pub async fn start(name: &str) -> std::io::Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut tasks = JoinSet::new();
        let body = Bytes::from(format!("hello from {name}\n"));
        tasks.spawn(async move {
            // Connections run inside this task's own set, aborted together with it.
            let mut connections = JoinSet::new();
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "backend accept");
                        continue;
                    }
                };
                let body = body.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let body = body.clone();
                        async move {
                            let response = if request.method() == hyper::Method::GET {
                                Response::new(Full::new(body))
                            } else {
                                let mut r =
                                    Response::new(Full::new(Bytes::from_static(b"GET only\n")));
                                *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                                r
                            };
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Backend {
            name: name.to_owned(),
            addr,
            tasks,
        })
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving at once: the listener and all connections close.
    pub fn kill(&mut self) {
        self.tasks.abort_all();
    }
}
