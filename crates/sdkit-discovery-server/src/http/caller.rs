//! Who sent a request: the client's address, and whether it is a configured peer.

use crate::shared::Shared;
use std::net::{IpAddr, Ipv4Addr};

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The client's address (connection and parked-poll budgets are kept per address).
    pub(crate) ip: IpAddr,
    /// A configured peer: its replication fields are honoured.
    pub(crate) trusted: bool,
}

impl Caller {
    /// A caller from `ip`, trusted when it is a configured peer.
    pub(crate) fn new(shared: &Shared, ip: IpAddr) -> Caller {
        Caller {
            ip,
            trusted: shared.config.trusted_peers.contains(&ip),
        }
    }

    /// An untrusted local caller (property tests).
    pub(crate) fn local() -> Caller {
        Caller {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            trusted: false,
        }
    }
}
