//! Errors of the etcd backend. Every message names the backend (`etcd:`) and what failed; none
//! contains a password or a token.

use std::time::Duration;

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error("etcd: invalid configuration: {0}")]
    Config(String),
    /// etcd refused the user name or password (or the user lacks a permission).
    #[error("etcd: authentication failed for user {user:?}: {message}")]
    Auth {
        /// The user name that was refused.
        user: String,
        /// etcd's explanation.
        message: String,
    },
    /// A TLS file could not be read.
    #[error("etcd: cannot read TLS file {path}: {source}")]
    TlsFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A request did not complete in time.
    #[error("etcd: {op} timed out after {timeout:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The bound that passed.
        timeout: Duration,
    },
    /// A request failed.
    #[error("etcd: {op} failed: {source}")]
    Request {
        /// The operation.
        op: &'static str,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The watch stream ended or was cancelled by etcd; it is being re-created.
    #[error("etcd: watch on {prefix:?} ended: {reason}")]
    WatchEnded {
        /// The watched prefix.
        prefix: String,
        /// Why it ended.
        reason: String,
    },
    /// The watch stream went silent (no answer to a progress request); it is being re-created.
    #[error("etcd: watch on {prefix:?} is unresponsive: no message within {waited:?}")]
    WatchStalled {
        /// The watched prefix.
        prefix: String,
        /// How long it was silent after the progress request.
        waited: Duration,
    },
    /// The lease keep-alive stream ended.
    #[error("etcd: keep-alive stream of lease {lease:#x} ended")]
    KeepAliveEnded {
        /// The lease.
        lease: i64,
    },
    /// More instances under one prefix than
    /// [`Config::max_instances`](crate::Config::max_instances) allows; the last good set is kept.
    #[error(
        "etcd: {prefix:?} holds more than {max} instances (max_instances); keeping the last good set"
    )]
    TooManyInstances {
        /// The prefix.
        prefix: String,
        /// The cap.
        max: usize,
    },
}

impl Error {
    /// Classifies a client error from `op`; `user` names the configured user, if any, so an
    /// authentication failure says who was refused.
    pub(crate) fn from_client(
        op: &'static str,
        source: etcd_client::Error,
        user: Option<&str>,
    ) -> Self {
        if let (Some(user), etcd_client::Error::GRpcStatus(status)) = (user, &source) {
            let message = status.message();
            if matches!(
                status.code() as i32,
                grpc_code::UNAUTHENTICATED | grpc_code::PERMISSION_DENIED
            ) || message.contains("authentication failed")
                || message.contains("invalid auth token")
                || message.contains("user name is empty")
            {
                return Error::Auth {
                    user: user.to_owned(),
                    message: message.to_owned(),
                };
            }
        }
        Error::Request { op, source }
    }

    /// `true` for failures worth an immediate retry on another endpoint (connection refused,
    /// member down, no leader).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Request { source, .. } => is_unavailable(source),
            Error::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// `true` when `error` means "this endpoint cannot serve now" (gRPC `Unavailable`, a transport
/// error, a broken stream).
pub(crate) fn is_unavailable(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code() as i32,
            grpc_code::UNAVAILABLE | grpc_code::UNKNOWN | grpc_code::INTERNAL
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// The gRPC status codes this crate looks at (etcd-client does not re-export tonic's `Code`).
mod grpc_code {
    pub(crate) const UNKNOWN: i32 = 2;
    pub(crate) const PERMISSION_DENIED: i32 = 7;
    pub(crate) const INTERNAL: i32 = 13;
    pub(crate) const UNAVAILABLE: i32 = 14;
    pub(crate) const UNAUTHENTICATED: i32 = 16;
}
