//! Errors of the ZooKeeper backend. Every message names the backend (`zookeeper:`) and what
//! failed; none contains a password.

use std::time::Duration;

/// What went wrong talking to ZooKeeper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error("zookeeper: invalid configuration: {0}")]
    Config(String),
    /// No session could be established with any server of the ensemble.
    #[error("zookeeper: cannot establish a session with {servers}: {source}")]
    Connect {
        /// The connect string (`host:port,host:port`).
        servers: String,
        /// The client's error.
        #[source]
        source: zookeeper_client::Error,
    },
    /// The digest credentials were refused.
    #[error("zookeeper: authentication failed for user {user:?}")]
    Auth {
        /// The refused user name.
        user: String,
    },
    /// A request did not complete in time.
    #[error("zookeeper: {op} {path} timed out after {timeout:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The node path.
        path: String,
        /// The bound that passed.
        timeout: Duration,
    },
    /// A request failed.
    #[error("zookeeper: {op} {path} failed: {source}")]
    Request {
        /// The operation.
        op: &'static str,
        /// The node path.
        path: String,
        /// The client's error.
        #[source]
        source: zookeeper_client::Error,
    },
    /// The connection to the ensemble is lost; the client is reconnecting (the session, its
    /// watches and its ephemeral nodes live on until the session timeout).
    #[error("zookeeper: disconnected from the ensemble (session {session:#x}); reconnecting")]
    Disconnected {
        /// The session id.
        session: i64,
    },
    /// The session ended (expired, closed, or its authentication failed); a new one is made.
    #[error("zookeeper: session {session:#x} ended: {state}")]
    SessionEnded {
        /// The session id.
        session: i64,
        /// The terminal state (`Expired`, `Closed`, `AuthFailed`).
        state: String,
    },
}

impl Error {
    pub(crate) fn request(op: &'static str, path: &str, source: zookeeper_client::Error) -> Self {
        Error::Request {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// The client's error code behind this error, if it is a failed request.
    pub fn zookeeper_error(&self) -> Option<&zookeeper_client::Error> {
        match self {
            Error::Request { source, .. } | Error::Connect { source, .. } => Some(source),
            _ => None,
        }
    }
}
