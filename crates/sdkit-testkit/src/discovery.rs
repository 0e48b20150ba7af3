//! The embedded discovery server (`sdkit-discovery-server`) in-process on a free loopback port,
//! and a counting TCP proxy that records every HTTP request passing through it.
//!
//! ```
//! use sdkit_testkit::discovery::{CountingProxy, DiscoveryServer};
//! use sdkit_discovery_server::Server;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = DiscoveryServer::start(Server::builder().env("dev")).await?;
//! let proxy = CountingProxy::start(server.addr()).await?;
//! assert_eq!(proxy.total(), 0);
//! server.stop().await;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sdkit_discovery_server::{Builder, Handle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A discovery server serving on `127.0.0.1` in this process; shut down on drop.
#[derive(Debug)]
pub struct DiscoveryServer {
    addr: SocketAddr,
    handle: Handle,
    builder: Builder,
    task: Option<JoinHandle<()>>,
}

impl DiscoveryServer {
    /// Starts a server built by `builder` on a free port of 127.0.0.1.
    ///
    /// # Errors
    ///
    /// When binding fails or the builder's configuration is invalid.
    pub async fn start(builder: Builder) -> io::Result<DiscoveryServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(builder, listener)
    }

    /// Starts a server on `addr` (retrying the bind for up to 5 s, e.g. right after a
    /// previous server on that port stopped).
    ///
    /// # Errors
    ///
    /// When the port stays taken or the configuration is invalid.
    pub async fn start_on(builder: Builder, addr: SocketAddr) -> io::Result<DiscoveryServer> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return Self::serve(builder, listener),
                Err(e) if Instant::now() >= deadline => return Err(e),
                // Polling a port until it is free is a wait with a deadline.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn serve(builder: Builder, listener: TcpListener) -> io::Result<DiscoveryServer> {
        let addr = listener.local_addr()?;
        let server = builder
            .clone()
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let handle = server.handle();
        let task = tokio::spawn(async move {
            if let Err(e) = server.serve(listener).await {
                tracing::warn!(error = %e, "discovery server ended with an error");
            }
        });
        Ok(DiscoveryServer {
            addr,
            handle,
            builder,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as a client seed.
    pub fn node(&self) -> String {
        self.addr.to_string()
    }

    /// The server's control handle (statistics).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Shuts the server down and waits until it stopped serving (parked polls answered,
    /// listener closed).
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        self.handle.shutdown();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the server and starts a fresh one (empty registry) on the same address.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound again within 5 s.
    pub async fn restart(mut self) -> io::Result<DiscoveryServer> {
        self.shutdown().await;
        Self::start_on(self.builder.clone(), self.addr).await
    }
}

impl Drop for DiscoveryServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// One HTTP request seen by a [`CountingProxy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, e.g. `/discovery/polls`.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    /// When the request line passed through.
    pub at: Instant,
}

type Log = Arc<Mutex<Vec<RecordedRequest>>>;

/// A TCP proxy on a free loopback port that forwards to `upstream` and records the request
/// line of every HTTP/1.1 request sent through it. Stops (closing every connection) on drop.
#[derive(Debug)]
pub struct CountingProxy {
    addr: SocketAddr,
    log: Log,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

const METHODS: [&str; 4] = ["GET /", "POST /", "PUT /", "DELETE /"];

impl CountingProxy {
    /// Starts forwarding to `upstream`.
    ///
    /// # Errors
    ///
    /// When binding the local port fails.
    pub async fn start(upstream: SocketAddr) -> io::Result<CountingProxy> {
        Self::start_patient(upstream, Duration::ZERO).await
    }

    /// Starts forwarding to `upstream`, holding each new client connection for up to
    /// `patience` while `upstream` refuses connections (as a load balancer in front of a
    /// registry that restarts on the same address): a client connecting during a restart
    /// reaches the new process instead of failing.
    ///
    /// # Errors
    ///
    /// When binding the local port fails.
    pub async fn start_patient(
        upstream: SocketAddr,
        patience: Duration,
    ) -> io::Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log: Log = Arc::default();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept_log = Arc::clone(&log);
        let accept_tasks = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = Arc::clone(&accept_log);
                let conn = tokio::spawn(async move {
                    let Some(server) = connect(upstream, patience).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream_dir = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        let mut line: Vec<u8> = Vec::new();
                        loop {
                            let n = match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            record(&log, &mut line, &buf[..n]);
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let downstream_dir = async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(upstream_dir, downstream_dir);
                });
                let mut tasks = accept_tasks.lock().unwrap_or_else(PoisonError::into_inner);
                tasks.retain(|t| !t.is_finished());
                tasks.push(conn);
            }
        });
        tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(accept);
        Ok(CountingProxy { addr, log, tasks })
    }

    /// The proxy's address (give it to clients as a node).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as a client seed.
    pub fn node(&self) -> String {
        self.addr.to_string()
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests seen so far to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Requests seen so far.
    pub fn total(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Connects to `upstream`, retrying refused connections for up to `patience`.
async fn connect(upstream: SocketAddr, patience: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + patience;
    loop {
        match TcpStream::connect(upstream).await {
            Ok(stream) => return Some(stream),
            Err(_) if Instant::now() >= deadline => return None,
            // Polling a port until it accepts is a wait with a deadline.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Scans client bytes for request lines. A line may be split across reads (kept in `line`);
/// a request body without a final newline runs into the next request line, so the method is
/// searched anywhere in the line (urlencoded bodies contain no `"GET /"`).
fn record(log: &Log, line: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b != b'\n' {
            if line.len() < 64 * 1024 {
                line.push(b);
            }
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if let Some(start) = METHODS.iter().filter_map(|m| text.find(m)).min() {
            let mut parts = text[start..].split(' ');
            let method = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default();
            if parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(RecordedRequest {
                        method,
                        path: path.to_owned(),
                        query: query.to_owned(),
                        at: Instant::now(),
                    });
            }
        }
        line.clear();
    }
}
