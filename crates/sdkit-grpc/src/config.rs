//! [`Config`]: how a [`Channel`](crate::Channel) connects, balances and waits.

use std::fmt;
use std::time::Duration;

use sdkit_core::Backoff;
use serde::Deserialize;
use tonic::transport::ClientTlsConfig;

use crate::connector::Connector;

/// gRPC-go's default per-call retry buffer: a request body larger than this is not replayed.
pub const DEFAULT_RETRY_BUFFER: usize = 256 * 1024;

/// Configuration of a [`Channel`](crate::Channel).
///
/// Every field has a default; the policy comes from `lb` (`pick_first`, `round_robin`,
/// `random`) or from a gRPC service config's `loadBalancingConfig` (the service config wins),
/// and defaults to `round_robin`.
///
/// ```
/// use std::time::Duration;
/// use sdkit_grpc::Config;
///
/// let config = Config::default()
///     .with_lb("pick_first")
///     .with_connect_timeout(Duration::from_secs(1))
///     .with_service_config(r#"{"methodConfig":[{"name":[{}],"timeout":"2s"}]}"#);
/// assert_eq!(config.lb(), Some("pick_first"));
///
/// let config: Config = serde_json::from_str(r#"{"lb": "round_robin", "ready_timeout": "3s"}"#).unwrap();
/// assert_eq!(config.ready_timeout(), Duration::from_secs(3));
/// ```
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    lb: Option<String>,
    service_config: Option<String>,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    connect_timeout: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    ready_timeout: Duration,
    retry_buffer: usize,
    request_hash_header: Option<String>,
    #[serde(skip)]
    backoff: Backoff,
    #[serde(skip)]
    tls: Option<ClientTlsConfig>,
    #[serde(skip)]
    connector: Option<Connector>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lb: None,
            service_config: None,
            connect_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(10),
            retry_buffer: DEFAULT_RETRY_BUFFER,
            request_hash_header: None,
            // gRPC's connection backoff (multiplier 1.6, jitter 0.2), starting sooner.
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30))
                .with_multiplier(1.6)
                .with_jitter(0.2),
            tls: None,
            connector: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("lb", &self.lb)
            .field("service_config", &self.service_config.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("ready_timeout", &self.ready_timeout)
            .field("retry_buffer", &self.retry_buffer)
            .field("request_hash_header", &self.request_hash_header)
            .field("backoff", &self.backoff)
            .field("tls", &self.tls.is_some())
            .field("connector", &self.connector.is_some())
            .finish()
    }
}

impl Config {
    /// Sets the balancing policy by name: `pick_first`, `round_robin` (the default) or
    /// `random`. A service config's `loadBalancingConfig` takes precedence.
    pub fn with_lb(mut self, name: impl Into<String>) -> Self {
        self.lb = Some(name.into());
        self
    }

    /// Reads each call's hash key from this request header (several values joined with `,`),
    /// for the consistent-hashing policies (`ring_hash`, `maglev`): calls with the same value
    /// go to the same endpoint while it stays ready; a call without the header gets a random
    /// hash. A service config's `ring_hash_experimental.requestHashHeader` (gRFC A76) takes
    /// precedence; a [`RequestHash`](crate::RequestHash) set on a request wins over both. The
    /// name must be a lowercase ASCII header (not `-bin`): checked when the channel is built.
    ///
    /// ```
    /// use sdkit_grpc::Config;
    ///
    /// let config = Config::default().with_lb("ring_hash").with_request_hash_header("x-user-id");
    /// assert_eq!(config.request_hash_header(), Some("x-user-id"));
    /// ```
    pub fn with_request_hash_header(mut self, name: impl Into<String>) -> Self {
        self.request_hash_header = Some(name.into());
        self
    }

    /// Sets a gRPC service config (JSON); parsed when the channel is built.
    pub fn with_service_config(mut self, json: impl Into<String>) -> Self {
        self.service_config = Some(json.into());
        self
    }

    /// Bound on opening one connection (default 5 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a call without a deadline waits for a ready endpoint (default 10 s); a call with
    /// a deadline waits up to its deadline.
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Largest request body kept for retries (default 256 KiB, as gRPC-go); a larger request is
    /// never retried.
    pub fn with_retry_buffer(mut self, bytes: usize) -> Self {
        self.retry_buffer = bytes;
        self
    }

    /// The reconnect backoff of a failed endpoint (default 100 ms growing ×1.6 to 30 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Connects with TLS (rustls). Plain addresses are dialled as `https`; set the server name
    /// with [`ClientTlsConfig::domain_name`] when it differs from the address.
    pub fn with_tls(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Replaces the TCP connector (TLS, when set, is layered on top).
    pub fn with_connector(mut self, connector: Connector) -> Self {
        self.connector = Some(connector);
        self
    }

    /// The policy name, if set.
    pub fn lb(&self) -> Option<&str> {
        self.lb.as_deref()
    }

    /// The service config JSON, if set.
    pub fn service_config(&self) -> Option<&str> {
        self.service_config.as_deref()
    }

    /// The request hash header, if set.
    pub fn request_hash_header(&self) -> Option<&str> {
        self.request_hash_header.as_deref()
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The wait for a ready endpoint of calls without a deadline.
    pub fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    /// The retry buffer size.
    pub fn retry_buffer(&self) -> usize {
        self.retry_buffer
    }

    /// The reconnect backoff.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The TLS settings, if any.
    pub fn tls(&self) -> Option<&ClientTlsConfig> {
        self.tls.as_ref()
    }

    /// The user connector, if any.
    pub fn connector(&self) -> Option<&Connector> {
        self.connector.as_ref()
    }
}
