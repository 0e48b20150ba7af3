//! HTTP for `call` and `demo`: the sdkit-http client they send through (one implementation:
//! the same name-resolving client, balancer and safe retries library users get), and the
//! small backend server the demo runs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sdkit::http::{Client, Config, Endpoint, MakeBalancer};
use sdkit::lb::BalancerConfig;
use sdkit::{Backoff, EndpointSet, Instancer, Target};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinSet;

use super::CommandError;

/// The header that carries `--key`: the CLI's HTTP client reads each request's hash from it
/// (consistent-hashing balancers send equal keys to one instance).
pub const KEY_HEADER: &str = "x-sdkit-key";

/// Largest response body read; a longer one fails the request.
pub const MAX_BODY: usize = 1 << 20;

/// The client `call` and `demo` send through: `attempts` attempts (transport errors and
/// 502/503/504 retried on another instance, GETs being idempotent), `attempt_timeout` each
/// (connecting included), all within `attempts × attempt_timeout` plus one second; each
/// service picks its instances with the balancer `lb` builds (`--lb`).
pub fn client(
    attempts: u32,
    attempt_timeout: Duration,
    lb: &BalancerConfig,
) -> Result<Client, CommandError> {
    let config = Config::default()
        .with_max_attempts(attempts)
        .with_attempt_timeout(attempt_timeout)
        .with_connect_timeout(attempt_timeout)
        .with_timeout(attempt_timeout * attempts.max(1) + Duration::from_secs(1))
        .with_backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(200),
        ))
        .with_request_hash_header(http::HeaderName::from_static(KEY_HEADER));
    let lb = lb.clone();
    let make: MakeBalancer = Arc::new(move |set| Arc::from(lb.build(set)));
    Client::new(config)
        .map(|client| client.with_balancer(make))
        .map_err(|e| CommandError::with("HTTP client", e))
}

/// Registers `target` in `client` as `name`; returns the name's endpoint set (to watch it).
pub fn register(
    client: &Client,
    name: &str,
    target: &Target,
    instancer: Box<dyn Instancer>,
) -> Result<EndpointSet<Endpoint>, CommandError> {
    client
        .add_instancer(name, target.to_string(), instancer)
        .map_err(|e| CommandError(e.to_string()))?;
    client
        .endpoint_set(name)
        .ok_or_else(|| CommandError(format!("{name}: not registered")))
}

/// A small HTTP backend: answers every GET with `hello from <name>`. Dropping (or
/// [`kill`](Self::kill)ing) it closes the listener and every open connection at once, as a
/// crash would.
#[derive(Debug)]
pub struct Backend {
    name: String,
    addr: SocketAddr,
    tasks: JoinSet<()>,
    /// After [`kill`](Self::kill): a socket bound to the dead backend's port and never
    /// listening, so connects keep being refused (as after a crash) instead of reaching
    /// whatever else binds the freed port next.
    tombstone: Option<TcpSocket>,
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
            tombstone: None,
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

    /// Stops serving at once: the listener and all connections close. The port stays held
    /// (bound, not listening) until the backend is dropped, so connects to it are refused
    /// rather than reaching another server that happens to bind the freed port.
    pub async fn kill(&mut self) {
        self.tasks.abort_all();
        // The listener is dropped when its aborted task ends.
        while self.tasks.join_next().await.is_some() {}
        let hold = || -> std::io::Result<TcpSocket> {
            let socket = TcpSocket::new_v4()?;
            // Past the closed connections' TIME_WAIT entries on this port.
            socket.set_reuseaddr(true)?;
            socket.bind(self.addr)?;
            Ok(socket)
        };
        match hold() {
            Ok(socket) => self.tombstone = Some(socket),
            Err(e) => {
                tracing::warn!(error = %e, addr = %self.addr, "holding the killed backend's port")
            }
        }
    }
}
