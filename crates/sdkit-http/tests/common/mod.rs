//! Test HTTP servers on loopback (real hyper servers), a test CA, and small helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What a test server does with each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// `200 hello from <name>`; echoes the `x-test` header as `x-test-echo`.
    Ok,
    /// Answers every request with this status.
    Status(u16),
    /// Answers the first `n` requests with this status, then as `Ok`.
    FailFirst(u64, u16),
    /// Reads the whole body, counts it, then closes the connection without answering.
    DropAfterBody,
    /// Reads the whole body, counts it, then never answers.
    Hang,
}

/// What a server saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Requests whose head arrived.
    pub requests: AtomicU64,
    /// Request bodies read in full (non-empty ones).
    pub bodies: AtomicU64,
}

/// A hyper HTTP/1 server on a free loopback port. Dropping (or [`kill`](Self::kill)ing) it
/// closes the listener and every connection at once, as a crash would.
pub struct TestServer {
    pub name: String,
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    tasks: JoinSet<()>,
}

impl TestServer {
    pub async fn start(name: &str, behaviour: Behaviour) -> TestServer {
        Self::serve(name, behaviour, None).await
    }

    pub async fn start_tls(
        name: &str,
        behaviour: Behaviour,
        tls: Arc<rustls::ServerConfig>,
    ) -> TestServer {
        Self::serve(name, behaviour, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    /// A server on a given address (one that was free).
    pub async fn start_on(name: &str, behaviour: Behaviour, addr: SocketAddr) -> TestServer {
        Self::serve_on(name, behaviour, None, addr).await
    }

    async fn serve(
        name: &str,
        behaviour: Behaviour,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> TestServer {
        Self::serve_on(name, behaviour, tls, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn serve_on(
        name: &str,
        behaviour: Behaviour,
        tls: Option<tokio_rustls::TlsAcceptor>,
        addr: SocketAddr,
    ) -> TestServer {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Seen::default());
        let mut tasks = JoinSet::new();
        let (name_owned, seen_task) = (name.to_owned(), Arc::clone(&seen));
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (name, seen, tls) = (name_owned.clone(), Arc::clone(&seen_task), tls.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(name.clone(), behaviour, Arc::clone(&seen), request)
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        TestServer {
            name: name.to_owned(),
            addr,
            seen,
            tasks,
        }
    }

    /// Stops serving at once: the listener and all connections close.
    pub fn kill(&mut self) {
        self.tasks.abort_all();
    }

    pub fn requests(&self) -> u64 {
        self.seen.requests.load(Ordering::SeqCst)
    }

    pub fn bodies(&self) -> u64 {
        self.seen.bodies.load(Ordering::SeqCst)
    }
}

async fn handle(
    name: String,
    behaviour: Behaviour,
    seen: Arc<Seen>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let nth = seen.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let behaviour = match behaviour {
        Behaviour::FailFirst(n, status) if nth <= n => Behaviour::Status(status),
        Behaviour::FailFirst(..) => Behaviour::Ok,
        other => other,
    };
    let echo = request.headers().get("x-test").cloned();
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    if !body.is_empty() {
        seen.bodies.fetch_add(1, Ordering::SeqCst);
    }
    match behaviour {
        Behaviour::Ok => {
            let mut response = Response::new(Full::new(Bytes::from(format!("hello from {name}"))));
            if let Some(echo) = echo {
                response.headers_mut().insert("x-test-echo", echo);
            }
            Ok(response)
        }
        Behaviour::Status(code) => {
            let mut response = Response::new(Full::new(Bytes::from(format!("{code} from {name}"))));
            *response.status_mut() = StatusCode::from_u16(code).expect("status");
            Ok(response)
        }
        // An error from the service makes hyper close the connection without an answer.
        Behaviour::DropAfterBody => Err(std::io::Error::other("dropped on purpose")),
        Behaviour::Hang => std::future::pending().await,
        Behaviour::FailFirst(..) => unreachable!("resolved above"),
    }
}

/// An address nothing listens on (bound, then released).
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A test CA and a server certificate for `localhost` and `127.0.0.1` signed by it.
pub struct TestCa {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        TestCa {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }
}

/// Waits for `condition` with a deadline (no sleeps as synchronisation: a short poll).
pub async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The body of a response as text.
pub async fn text(response: reqwest::Response) -> String {
    response.text().await.expect("body")
}
