//! A small loopback HTTP world for failure scenarios: hyper servers whose behaviour can be
//! switched (answer, answer 503, accept and never answer) and a hyper client endpoint that
//! classifies its failures the way a transport does.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sdkit_core::BoxError;
use sdkit_core::lb::{Classified, FailureClass};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How a [`TestServer`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200 "ok".
    Ok = 0,
    /// Accepts connections, reads requests, never answers.
    Blackhole = 1,
    /// 503 at once.
    Unavailable = 2,
}

/// A hyper HTTP/1 server on a free loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(mode: Mode) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let task = tokio::spawn({
            let mode = Arc::clone(&mode);
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let mode = Arc::clone(&mode);
                    tokio::spawn(async move {
                        let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                            let mode = mode.load(Ordering::Relaxed);
                            async move {
                                if mode == Mode::Blackhole as u8 {
                                    std::future::pending::<()>().await;
                                }
                                let status = if mode == Mode::Unavailable as u8 {
                                    StatusCode::SERVICE_UNAVAILABLE
                                } else {
                                    StatusCode::OK
                                };
                                let mut response =
                                    Response::new(Full::new(Bytes::from_static(b"ok")));
                                *response.status_mut() = status;
                                Ok::<_, Infallible>(response)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        TestServer { addr, mode, task }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Attempt counters, per instance and in total.
#[derive(Debug, Default)]
pub struct Counts {
    pub started: AtomicU64,
    pub failed: AtomicU64,
}

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// A client endpoint for one instance: GET / within `timeout`; failures classified.
#[derive(Clone)]
pub struct Endpoint {
    pub client: HttpClient,
    pub uri: hyper::Uri,
    pub id: Arc<str>,
    pub timeout: Duration,
    pub counts: Arc<Counts>,
    pub total: Arc<Counts>,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<()> for Endpoint {
    type Response = Arc<str>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Arc<str>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: ()) -> Self::Future {
        let this = self.clone();
        this.counts.started.fetch_add(1, Ordering::Relaxed);
        this.total.started.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let result = get(&this).await;
            if result.is_err() {
                this.counts.failed.fetch_add(1, Ordering::Relaxed);
                this.total.failed.fetch_add(1, Ordering::Relaxed);
            }
            result
        })
    }
}

async fn get(e: &Endpoint) -> Result<Arc<str>, BoxError> {
    let call = async {
        let response = e.client.get(e.uri.clone()).await.map_err(|error| {
            let class = if error.is_connect() {
                FailureClass::ConnectFailed
            } else {
                FailureClass::Unavailable
            };
            Classified::new(class, error)
        })?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status.is_server_error() {
            let class = if status == StatusCode::SERVICE_UNAVAILABLE {
                FailureClass::Unavailable
            } else {
                FailureClass::ServerError
            };
            return Err(Classified::new(class, format!("HTTP {status}")).into());
        }
        Ok(Arc::clone(&e.id))
    };
    match tokio::time::timeout(e.timeout, call).await {
        Ok(result) => result,
        Err(elapsed) => Err(Classified::new(FailureClass::Timeout, elapsed).into()),
    }
}

/// Latency percentile `p` (0..=1) of sorted `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}
