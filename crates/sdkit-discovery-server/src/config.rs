//! Server configuration: identity, long-poll hold, lease and protect mode.
//!
//! Every duration is configurable so tests can run with a short hold and a short lease.
//! Defaults follow the reference server (`cmd/discovery/discovery.toml`, `registry/guard.go`).

use crate::{Limits, Token};
use std::net::IpAddr;
use std::time::Duration;

/// Lease (eviction) settings.
///
/// An instance not renewed for [`evict_after`](Lease::evict_after) is evicted by a check that
/// runs every [`evict_interval`](Lease::evict_interval). Two guards slow eviction down the way
/// the reference does:
///
/// * **self-preservation**: when fewer renews arrived during the last interval than
///   `preservation_ratio` × the expected count (live instances × `evict_interval` /
///   `renew_interval`), the registry assumes a network problem on *its* side and evicts only
///   instances older than [`protected_evict_after`](Lease::protected_evict_after);
/// * **per-tick cap**: at most `n - floor(n × evict_cap_ratio)` instances (n = live instances,
///   at least 1) are evicted per check, the stalest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// An instance expires when not renewed for longer than this (default 90 s).
    pub evict_after: Duration,
    /// How often expiry is checked (default 60 s).
    pub evict_interval: Duration,
    /// The interval at which clients renew (default 30 s); sets the expected renew count.
    pub renew_interval: Duration,
    /// Whether self-preservation is on (default true).
    pub self_preservation: bool,
    /// Fraction of expected renews below which self-preservation starts (default 0.85).
    pub preservation_ratio: f64,
    /// Expiry while self-preservation is active (default 3600 s).
    pub protected_evict_after: Duration,
    /// Eviction cap ratio per check, see above (default 0.85).
    pub evict_cap_ratio: f64,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            evict_after: Duration::from_secs(90),
            evict_interval: Duration::from_secs(60),
            renew_interval: Duration::from_secs(30),
            self_preservation: true,
            preservation_ratio: 0.85,
            protected_evict_after: Duration::from_secs(3600),
            evict_cap_ratio: 0.85,
        }
    }
}

/// The complete server configuration. Build one with [`Server::builder`](crate::Server::builder).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The server's deployment env; it registers itself (`infra.discovery`) there (default `dev`).
    pub env: String,
    /// The server's zone (default `local`).
    pub zone: String,
    /// The server's region (default `local`).
    pub region: String,
    /// The hostname of the server's own instance; `None` means `discovery-<bound address>`.
    pub hostname: Option<String>,
    /// Longest time a `poll`/`polls` is parked (default 30 s). A shorter
    /// `x1-bmspy-timeout` header (minus 20 ms) wins.
    pub hold: Duration,
    /// Lease and eviction.
    pub lease: Lease,
    /// Start in protect mode for this long: reads answer -500 (default: off).
    pub protect_for: Option<Duration>,
    /// Bounds on input and state.
    pub limits: Limits,
    /// Longest time to read request headers (default 40 s, the reference's server timeout).
    /// Waiting for the next request on an idle keep-alive connection counts as reading
    /// headers, so this is also the idle timeout (clients renew every 30 s and keep their
    /// connection).
    pub read_timeout: Duration,
    /// Longest time to read a request body once the headers arrived (default 10 s).
    pub body_timeout: Duration,
    /// Longest time an answer may make no write progress (the client stopped reading)
    /// before the connection is dropped (default 10 s). A parked long poll writes nothing
    /// while parked, so the hold is not limited by this.
    pub write_timeout: Duration,
    /// Bearer token for writes (`Authorization: Bearer <token>`); `None` (the default)
    /// leaves writes open, as in the reference.
    pub token: Option<Token>,
    /// Whether reads need the token too (default false).
    pub token_reads: bool,
    /// Addresses whose `replication`, `dirty_timestamp`, `latest_timestamp` and
    /// `set_timestamp` are honoured (clamped to the server's clock): discovery peers. Empty by
    /// default: every client-supplied timestamp is ignored.
    pub trusted_peers: Vec<IpAddr>,
    /// On shutdown, how long open connections may take to finish (default 5 s).
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            env: "dev".into(),
            zone: "local".into(),
            region: "local".into(),
            hostname: None,
            hold: Duration::from_secs(30),
            lease: Lease::default(),
            protect_for: None,
            limits: Limits::default(),
            read_timeout: Duration::from_secs(40),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            token: None,
            token_reads: false,
            trusted_peers: Vec::new(),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
