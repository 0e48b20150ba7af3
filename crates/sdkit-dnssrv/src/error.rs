//! Errors of the DNS SRV backend.
//!
//! Construction errors ([`Error::InvalidName`], [`Error::Config`], [`Error::SystemConfig`]) are
//! returned by [`Instancer::new`](crate::Instancer::new); lookup errors ([`Error::Lookup`],
//! [`Error::TargetLookup`]) reach subscribers inside an error event
//! ([`Snapshot::error`](sdkit_core::Snapshot::error)) while the last good set is kept.

use sdkit_core::BoxError;

/// What went wrong in the DNS SRV backend. Every message starts with `dnssrv:`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configured SRV name (or a target name in an answer) is not a valid DNS name.
    #[error("dnssrv: invalid DNS name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("dnssrv: invalid configuration: {0}")]
    Config(String),
    /// No name server is configured and the system resolver configuration cannot be read.
    #[error("dnssrv: cannot read the system resolver configuration: {0}")]
    SystemConfig(#[source] BoxError),
    /// The SRV query failed (timeout, connection refused, SERVFAIL, REFUSED, …). NXDOMAIN and
    /// "no records" are not errors: they publish an empty set.
    #[error("dnssrv: SRV lookup of {name} failed: {source}")]
    Lookup {
        /// The SRV name.
        name: String,
        /// The resolver's error.
        #[source]
        source: BoxError,
    },
    /// The address (A/AAAA) lookup of an SRV target failed for a reason other than "no such
    /// name / no records"; the whole refresh is treated as failed, the last good set is kept.
    #[error("dnssrv: address lookup of target {target} (of {name}) failed: {source}")]
    TargetLookup {
        /// The SRV name.
        name: String,
        /// The target host name.
        target: String,
        /// The resolver's error.
        #[source]
        source: BoxError,
    },
}
