//! Errors of the discovery backend. Every message names the backend ("discovery") and, for
//! wire failures, the node and the endpoint involved.

use std::time::Duration;

use sdkit_discovery_proto::Code;

/// What went wrong talking to a discovery registry, or building a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (no node, empty env, …).
    #[error("discovery: invalid configuration: {0}")]
    Config(String),
    /// A client was built outside a Tokio runtime.
    #[error("discovery: a client must be built inside a Tokio runtime")]
    NoRuntime,
    /// The client was shut down.
    #[error("discovery: the client was shut down")]
    Shutdown,
    /// The request could not be sent or its answer not read (connection refused, reset, …).
    #[error("discovery: {endpoint} on node {node} failed: {source}")]
    Transport {
        /// The node (`host:port`).
        node: String,
        /// The request path.
        endpoint: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer within the request timeout.
    #[error("discovery: {endpoint} on node {node} timed out after {timeout:?}")]
    Timeout {
        /// The node.
        node: String,
        /// The request path.
        endpoint: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// The node answered with an HTTP status other than 200.
    #[error("discovery: {endpoint} on node {node} answered HTTP {status}")]
    Http {
        /// The node.
        node: String,
        /// The request path.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The body is not a discovery reply (bad JSON, too large).
    #[error("discovery: malformed {endpoint} reply from node {node}: {source}")]
    Malformed {
        /// The node.
        node: String,
        /// The request path.
        endpoint: &'static str,
        /// What the decoder said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The reply's code is an error (e.g. -400, -500).
    #[error("discovery: {endpoint} on node {node} answered code {code}: {message}")]
    Code {
        /// The node.
        node: String,
        /// The request path.
        endpoint: &'static str,
        /// The code.
        code: Code,
        /// The reply's message (truncated to 200 characters).
        message: String,
    },
    /// An answer listed more instances of one appid than [`Config::max_instances`](crate::Config::max_instances)
    /// allows; the last good set is kept.
    #[error(
        "discovery: {appid} lists {count} instances, more than the cap of {max} (max_instances); keeping the last good set"
    )]
    TooManyInstances {
        /// The appid.
        appid: String,
        /// The instances in the answer.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// Just after a node switch or restart the node does not know an app that had instances
    /// (yet: registrars re-register within a renew interval); the last set is kept, stale,
    /// for up to [`Config::unknown_grace`](crate::Config::unknown_grace).
    #[error(
        "discovery: {appid} is unknown or empty on node {node} just after a node switch or restart; keeping the last set (stale) for up to {grace:?}"
    )]
    UnknownAfterSwitch {
        /// The appid.
        appid: String,
        /// The node.
        node: String,
        /// The grace period.
        grace: Duration,
    },
}

impl Error {
    /// The reply code when the registry answered one.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Code { code, .. } => Some(*code),
            _ => None,
        }
    }
}
