//! Shared by the integration tests: the greeter (compiled from `proto/greeter.proto` by the
//! build script), real tonic servers each in its own runtime (so killing one closes every
//! connection at once, like a crashed process), and registry helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use sdkit::{Instance, Registrar, Target};
use tonic::transport::ServerTlsConfig;
use tonic::{Request, Response, Status};

pub mod greeter {
    tonic::include_proto!("greeter");
}

use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest};

/// Answers `hello <name>` with its own name; optionally fails its first calls with UNAVAILABLE.
#[derive(Debug, Clone)]
pub struct Hello {
    name: Arc<str>,
    served: Arc<AtomicU64>,
    unavailable_first: Arc<AtomicU32>,
}

impl Hello {
    /// A greeter that always answers, named `name`.
    pub fn named(name: &str) -> Hello {
        Hello {
            name: name.into(),
            served: Arc::default(),
            unavailable_first: Arc::default(),
        }
    }
}

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let failing = self
            .unavailable_first
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Status::unavailable(format!("{} is warming up", self.name)));
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(HelloReply {
            message: format!("hello {}", request.into_inner().name),
            server: self.name.to_string(),
        }))
    }
}

/// Options of a test server.
#[derive(Default)]
pub struct Options {
    pub tls: Option<ServerTlsConfig>,
    pub unavailable_first: u32,
    pub addr: Option<SocketAddr>,
}

/// A greeter plus the health service, serving on loopback in its own runtime.
pub struct TestServer {
    pub name: String,
    pub addr: SocketAddr,
    served: Arc<AtomicU64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    pub fn start(name: &str) -> TestServer {
        Self::start_with(name, Options::default())
    }

    pub fn start_with(name: &str, options: Options) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let served = Arc::new(AtomicU64::new(0));
        let hello = Hello {
            name: name.into(),
            served: Arc::clone(&served),
            unavailable_first: Arc::new(AtomicU32::new(options.unavailable_first)),
        };
        let bind = options
            .addr
            .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let listener = bind_retrying(bind).expect("bind test server");
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let (reporter, health) = tonic_health::server::health_reporter();
            reporter.set_serving::<GreeterServer<Hello>>().await;
            let mut builder = tonic::transport::Server::builder();
            if let Some(tls) = options.tls {
                builder = builder.tls_config(tls).expect("server tls");
            }
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let _ = builder
                .add_service(GreeterServer::new(hello))
                .add_service(health)
                .serve_with_incoming(incoming)
                .await;
        });
        TestServer {
            name: name.to_owned(),
            addr,
            served,
            runtime: Some(runtime),
        }
    }

    /// Calls this server answered successfully.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Kills the server: every task and connection of its runtime ends at once.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Binds, retrying for a while when the port is still taken (a restarted server's old port).
fn bind_retrying(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                return Ok(listener);
            }
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            // Polling a port until it is free is a wait with a deadline.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Registers `id` at `addr` through `url` and waits for the registry to accept it.
pub async fn register(url: &str, id: &str, addr: SocketAddr) -> Box<dyn Registrar> {
    let target: Target = url.parse().expect("target");
    let registrar = target
        .registrar(Instance::new(id, addr.to_string()))
        .expect("registrar");
    tokio::time::timeout(Duration::from_secs(20), registrar.register())
        .await
        .expect("registration in time")
        .expect("registration");
    registrar
}

/// One greeting through `channel`; the name of the server that answered.
pub async fn hello(
    client: &mut greeter::greeter_client::GreeterClient<sdkit_grpc::Channel>,
) -> Result<String, Status> {
    let reply = client
        .say_hello(HelloRequest {
            name: "sdkit".into(),
        })
        .await?;
    Ok(reply.into_inner().server)
}

/// Waits (deadline) until `condition` holds, polling every 10 ms; panics with `what` otherwise.
pub async fn eventually(what: &str, deadline: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let until = tokio::time::Instant::now() + deadline;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < until,
            "not within {deadline:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
