//! Error types shared by every part of sdkit.

use std::time::Duration;

/// A boxed error, as `tower` uses: what endpoints, factories and backends return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// No instance set arrived within the caller's deadline (the registry may be unreachable, or the
/// source stopped before publishing anything).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no instances yet: nothing was published within {waited:?}")]
pub struct NoInstancesYet {
    /// How long the caller waited.
    pub waited: Duration,
}

/// A balancer had no endpoint to pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("no endpoints available")]
pub struct NoEndpoints;

/// Why a [`Registrar`](crate::Registrar) call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrarError {
    /// `register` was called after `deregister`: a registrar is used once.
    #[error("registrar was already deregistered")]
    Deregistered,
    /// The registry did not confirm the deregistration within the bound.
    #[error("deregistration did not complete within {0:?}")]
    Timeout(Duration),
    /// The registry refused or failed the call.
    #[error("registry error: {0}")]
    Backend(#[source] BoxError),
}
