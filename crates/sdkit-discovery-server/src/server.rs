//! [`Server`]: serving on a listener, and graceful shutdown through a [`Handle`].
//!
//! The serve future owns every task it starts (the lease task and one task per connection)
//! in a `JoinSet`: dropping or aborting it cancels them all, and connections still open
//! after the shutdown grace are aborted.

use crate::Builder;
use crate::config::Config;
use crate::error::ServeError;
use crate::shared::{Shared, TaskGuard};
use crate::{conn, lease};
use sdkit_discovery_proto::args::RegisterArgs;
use sdkit_discovery_proto::{INFRA_DISCOVERY, Status};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

/// An embedded registry speaking the bilibili discovery HTTP API.
///
/// ```
/// use sdkit_discovery_server::Server;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder().env("dev").zone("sh001").build()?;
/// let handle = server.handle();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let serving = tokio::spawn(server.serve(listener));
///
/// // The server registered itself as `infra.discovery`; fetch it over plain HTTP/1.1.
/// let mut conn = tokio::net::TcpStream::connect(addr).await?;
/// let req = "GET /discovery/fetch?env=dev&appid=infra.discovery&status=1 HTTP/1.1\r\n\
///            Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
/// conn.write_all(req.as_bytes()).await?;
/// let mut answer = String::new();
/// conn.read_to_string(&mut answer).await?;
/// assert!(answer.starts_with("HTTP/1.1 200"));
/// assert!(answer.contains(r#""code":0"#));
/// assert!(answer.contains(&format!("http://{addr}")));
///
/// handle.shutdown();
/// serving.await??;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    pub(crate) shared: Arc<Shared>,
}

/// Controls a [`Server`] from outside: shutdown and statistics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

/// A snapshot of the server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Registered (appid, env) pairs.
    pub apps: usize,
    /// Registered instances, the server's own included.
    pub instances: usize,
    /// Long polls currently parked.
    pub parked_polls: usize,
    /// Lease checks run so far.
    pub lease_checks: u64,
    /// Instances evicted so far.
    pub evicted: u64,
    /// Whether the last lease check was restrained by self-preservation.
    pub self_preservation: bool,
    /// Whether protect mode (reads answer -500) is on.
    pub protect_mode: bool,
    /// Open connections.
    pub connections: usize,
    /// Connections refused by a connection limit so far.
    pub refused_connections: u64,
    /// Tasks the serve future owns that are still alive (the lease task and one per
    /// connection); 0 once it returned or was dropped.
    pub tasks: usize,
}

impl Handle {
    /// Starts a graceful shutdown: stop accepting, answer parked polls -304 at once, let
    /// in-flight requests finish (up to [`Config::shutdown_grace`]). Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// The address the server is bound to, once serving.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.addr.get().copied()
    }

    /// Current statistics.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let (apps, instances) = s.registry.sizes();
        Stats {
            apps,
            instances,
            parked_polls: s.stats.parked.load(Ordering::Relaxed),
            lease_checks: s.stats.lease_checks.load(Ordering::Relaxed),
            evicted: s.stats.evicted.load(Ordering::Relaxed),
            self_preservation: s.registry.is_protected(),
            protect_mode: s.is_protected(),
            connections: s.connections.in_use(),
            refused_connections: s.stats.refused_connections.load(Ordering::Relaxed),
            tasks: s.stats.tasks.load(Ordering::Relaxed),
        }
    }
}

impl Server {
    /// A builder with the defaults of [`Config`].
    pub fn builder() -> Builder {
        Builder {
            config: Config::default(),
        }
    }

    /// A handle for shutdown and statistics.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Serves on `listener` until [`Handle::shutdown`].
    pub async fn serve(self, listener: TcpListener) -> Result<(), ServeError> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves on `listener` until `signal` resolves or [`Handle::shutdown`] is called.
    ///
    /// On start the server registers itself as `infra.discovery` with `http://<bound addr>`.
    pub async fn serve_with_shutdown<F>(
        self,
        listener: TcpListener,
        signal: F,
    ) -> Result<(), ServeError>
    where
        F: Future<Output = ()>,
    {
        let shared = self.shared;
        let addr = listener.local_addr()?;
        let _ = shared.addr.set(addr);
        if let Some(protect) = shared.config.protect_for {
            let _ = shared.protect_until.set(Instant::now() + protect);
        }
        shared
            .registry
            .register_own(&own_instance(&shared.config, addr))
            .map_err(|e| ServeError::SelfRegistration(e.0))?;
        if !addr.ip().is_loopback() && shared.config.token.is_none() {
            warn!(
                %addr,
                "LISTENING ON A NON-LOOPBACK ADDRESS WITHOUT A TOKEN: anyone who can reach \
                 {addr} can register, cancel and rewrite every instance; set a token \
                 (sdkit serve --token / SDKIT_SERVE_TOKEN) or listen on 127.0.0.1"
            );
        }
        let mut tasks = JoinSet::new();
        let guard = TaskGuard::new(&shared);
        let lease_shared = Arc::clone(&shared);
        tasks.spawn(async move {
            let _guard = guard;
            lease::run(lease_shared).await;
        });
        let http = conn::http(&shared);
        tokio::pin!(signal);
        info!(%addr, env = %shared.config.env, zone = %shared.config.zone, "discovery server listening");
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => conn::admit(&shared, &mut tasks, &http, stream, peer),
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next() => {}
                () = &mut signal => break,
                () = shared.shutdown.cancelled() => break,
            }
        }
        shared.shutdown.cancel();
        drop(listener);
        info!("shutting down: parked polls answered, draining connections");
        let grace = shared.config.shutdown_grace;
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!(
                ?grace,
                open = tasks.len(),
                "connections still open after the grace period: aborted"
            );
            tasks.shutdown().await;
        }
        Ok(())
    }
}

fn own_instance(config: &Config, addr: SocketAddr) -> RegisterArgs {
    RegisterArgs {
        region: config.region.clone(),
        zone: config.zone.clone(),
        env: config.env.clone(),
        appid: INFRA_DISCOVERY.into(),
        hostname: config
            .hostname
            .clone()
            .unwrap_or_else(|| format!("discovery-{addr}")),
        status: Status::Up.as_u32(),
        addrs: vec![format!("http://{addr}")],
        version: env!("CARGO_PKG_VERSION").into(),
        ..RegisterArgs::default()
    }
}
