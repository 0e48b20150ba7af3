//! [`Server`]: building, serving on a listener, and graceful shutdown through a [`Handle`].

use crate::config::{Config, Lease};
use crate::error::{BuildError, ServeError};
use crate::registry::Registry;
use crate::{Limits, lease};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use sdkit_discovery_proto::args::RegisterArgs;
use sdkit_discovery_proto::{INFRA_DISCOVERY, Status};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Counters the handlers and the lease task update.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) parked: AtomicUsize,
    pub(crate) lease_checks: AtomicU64,
    pub(crate) evicted: AtomicU64,
}

/// State shared by the accept loop, every connection and the lease task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) shutdown: CancellationToken,
    pub(crate) stats: Counters,
    pub(crate) addr: OnceLock<SocketAddr>,
    pub(crate) answers: crate::http::Answers,
    protect_until: OnceLock<Instant>,
}

impl Shared {
    /// Whether protect mode is on (reads answer -500).
    pub(crate) fn is_protected(&self) -> bool {
        self.protect_until
            .get()
            .is_some_and(|until| Instant::now() < *until)
    }
}

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
///            Host: x\r\nConnection: close\r\n\r\n";
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
    shared: Arc<Shared>,
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
        let lease = tokio::spawn(lease::run(Arc::clone(&shared)));
        let graceful = GracefulShutdown::new();
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(shared.config.read_timeout)
            .keep_alive(true);
        tokio::pin!(signal);
        info!(%addr, env = %shared.config.env, zone = %shared.config.zone, "discovery server listening");
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let conn_shared = Arc::clone(&shared);
                        let service = service_fn(move |req| {
                            let shared = Arc::clone(&conn_shared);
                            async move { Ok::<_, Infallible>(crate::http::handle(&shared, req).await) }
                        });
                        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut signal => break,
                () = shared.shutdown.cancelled() => break,
            }
        }
        shared.shutdown.cancel();
        drop(listener);
        info!("shutting down: parked polls answered, draining connections");
        if tokio::time::timeout(shared.config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(grace = ?shared.config.shutdown_grace, "connections still open after the grace period");
        }
        let _ = lease.await;
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

/// Builds a [`Server`]; every setter has a documented default (see [`Config`]).
#[derive(Debug, Clone)]
pub struct Builder {
    config: Config,
}

impl Builder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The server's env (default `dev`).
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.config.env = env.into();
        self
    }

    /// The server's zone (default `local`).
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.config.zone = zone.into();
        self
    }

    /// The server's region (default `local`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.config.region = region.into();
        self
    }

    /// The hostname of the server's own instance (default `discovery-<bound address>`).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.config.hostname = Some(hostname.into());
        self
    }

    /// Longest long-poll hold (default 30 s).
    pub fn hold(mut self, hold: Duration) -> Self {
        self.config.hold = hold;
        self
    }

    /// Lease expiry (default 90 s).
    pub fn evict_after(mut self, after: Duration) -> Self {
        self.config.lease.evict_after = after;
        self
    }

    /// All lease settings.
    pub fn lease(mut self, lease: Lease) -> Self {
        self.config.lease = lease;
        self
    }

    /// Start in protect mode for `duration` (reads answer -500).
    pub fn protect_for(mut self, duration: Duration) -> Self {
        self.config.protect_for = Some(duration);
        self
    }

    /// Size and capacity limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Grace period for open connections on shutdown (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<Server, BuildError> {
        let c = self.config;
        let label_max = c.limits.fields.max_label_len;
        for (field, value) in [("env", &c.env), ("zone", &c.zone), ("region", &c.region)] {
            if value.is_empty() || value.len() > label_max {
                return Err(BuildError::Label {
                    field,
                    max: label_max,
                });
            }
        }
        let host_max = c.limits.fields.max_hostname_len;
        if c.hostname
            .as_ref()
            .is_some_and(|h| h.is_empty() || h.len() > host_max)
        {
            return Err(BuildError::Label {
                field: "hostname",
                max: host_max,
            });
        }
        for (name, d) in [
            ("hold", c.hold),
            ("evict_after", c.lease.evict_after),
            ("evict_interval", c.lease.evict_interval),
            ("renew_interval", c.lease.renew_interval),
            ("protected_evict_after", c.lease.protected_evict_after),
        ] {
            if d.is_zero() {
                return Err(BuildError::ZeroDuration(name));
            }
        }
        for (name, r) in [
            ("preservation_ratio", c.lease.preservation_ratio),
            ("evict_cap_ratio", c.lease.evict_cap_ratio),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(BuildError::Ratio(name));
            }
        }
        let registry = Registry::new(c.env.clone(), c.limits.clone());
        Ok(Server {
            shared: Arc::new(Shared {
                config: c,
                registry,
                shutdown: CancellationToken::new(),
                stats: Counters::default(),
                addr: OnceLock::new(),
                answers: crate::http::Answers::default(),
                protect_until: OnceLock::new(),
            }),
        })
    }
}
