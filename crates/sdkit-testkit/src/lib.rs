//! # sdkit-testkit
//!
//! Fixtures for sdkit's tests: real components on free loopback ports. Every fixture waits for
//! readiness with a deadline and is killed (SIGKILL, by PID) when dropped, so a failing test
//! never leaves a process behind.
//!
//! * [`process`]: the building block — free ports, [`ChildProcess`], [`wait_until`].
//! * [`discovery`]: the embedded discovery server in-process, and a counting proxy.
//! * [`etcd`]: a real etcd node or cluster ([`EtcdCluster`]) with kill/restart of members.
//! * [`dnsmasq`]: a real DNS server serving SRV records ([`Dnsmasq`], [`Zone`]).
//! * [`consul`]: an in-process Consul HTTP API double ([`ConsulDouble`]).
//! * [`eureka`]: an in-process Eureka REST API double ([`EurekaDouble`]).
//! * [`pause_proxy`]: a TCP proxy that cuts a client off from its server ([`PausableProxy`]).
//! * [`zookeeper`]: a real ZooKeeper server or three-server ensemble ([`ZooKeeper`]).
//! * [`prometheus`]: a real Prometheus scraping given targets ([`Prometheus`]), and
//!   `promtool check metrics`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod consul;
pub mod discovery;
pub mod dnsmasq;
pub mod etcd;
pub mod eureka;
mod eureka_registry;
pub mod logs;
pub mod pause_proxy;
pub mod process;
pub mod prometheus;
pub mod wait;
pub mod zookeeper;

pub use consul::ConsulDouble;
pub use dnsmasq::{Dnsmasq, Zone};
pub use etcd::{EtcdCluster, EtcdTls};
pub use eureka::EurekaDouble;
pub use pause_proxy::PausableProxy;
pub use process::{
    ChildProcess, free_port, free_ports, free_udp_port, wait_until, wait_until_async,
};
pub use prometheus::Prometheus;
pub use zookeeper::ZooKeeper;
