//! The client and watch configuration of one test instancer, built with one chain of setters.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sdkit_core::Backoff;
use sdkit_dnssrv::{
    AddressFamily, Config, Error, Instancer, InstancerConfig, PriorityMode, TargetMode, Transport,
};

/// A [`Config`] and an [`InstancerConfig`] together.
#[derive(Clone, Debug)]
pub struct Setup {
    pub client: Config,
    pub watch: InstancerConfig,
}

impl Setup {
    /// Watches `name` with the defaults.
    pub fn new(name: &str) -> Setup {
        Setup {
            client: Config::default(),
            watch: InstancerConfig::new(name),
        }
    }

    pub fn with_nameserver(mut self, addr: SocketAddr) -> Self {
        self.client = self.client.with_nameserver(addr);
        self
    }

    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.client = self.client.with_transport(transport);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.with_timeout(timeout);
        self
    }

    pub fn with_attempts(mut self, attempts: usize) -> Self {
        self.client = self.client.with_attempts(attempts);
        self
    }

    pub fn with_refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.watch = self.watch.with_refresh_bounds(min, max);
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.watch = self.watch.with_backoff(backoff);
        self
    }

    pub fn with_priority(mut self, mode: PriorityMode) -> Self {
        self.watch = self.watch.with_priority(mode);
        self
    }

    pub fn with_targets(mut self, mode: TargetMode) -> Self {
        self.watch = self.watch.with_targets(mode);
        self
    }

    pub fn with_address_family(mut self, family: AddressFamily) -> Self {
        self.watch = self.watch.with_address_family(family);
        self
    }

    /// The instancer (with a client of its own).
    pub fn instancer(self) -> Result<Instancer, Error> {
        Instancer::from_config(self.client, self.watch)
    }
}
