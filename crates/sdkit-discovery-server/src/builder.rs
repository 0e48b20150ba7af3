//! [`Builder`]: a validated [`Config`] into a [`Server`].

use crate::config::{Config, Lease};
use crate::error::BuildError;
use crate::shared::Shared;
use crate::{Limits, Server, Token};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Builds a [`Server`]; every setter has a documented default (see [`Config`]).
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) config: Config,
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

    /// Bearer token required for writes (see [`Config::token`]).
    pub fn token(mut self, token: Token) -> Self {
        self.config.token = Some(token);
        self
    }

    /// Whether reads need the token too (default false).
    pub fn token_reads(mut self, on: bool) -> Self {
        self.config.token_reads = on;
        self
    }

    /// Adds a peer whose replication timestamps are honoured (see [`Config::trusted_peers`]).
    pub fn trusted_peer(mut self, ip: IpAddr) -> Self {
        self.config.trusted_peers.push(ip);
        self
    }

    /// Longest wait for request headers, idle keep-alive included (default 40 s).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config.read_timeout = timeout;
        self
    }

    /// Longest wait for a request body (default 10 s).
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_timeout = timeout;
        self
    }

    /// Longest time an answer may make no write progress (default 10 s).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
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
        if c.token.as_ref().is_some_and(Token::is_empty) {
            return Err(BuildError::EmptyToken);
        }
        if c.token_reads && c.token.is_none() {
            return Err(BuildError::TokenReadsWithoutToken);
        }
        for (name, d) in [
            ("hold", c.hold),
            ("read_timeout", c.read_timeout),
            ("body_timeout", c.body_timeout),
            ("write_timeout", c.write_timeout),
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
        Ok(Server {
            shared: Arc::new(Shared::new(c)),
        })
    }
}
