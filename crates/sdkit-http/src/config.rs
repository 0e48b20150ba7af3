//! Configuration of the HTTP [`Client`](crate::Client): timeouts, attempts, backoff, the scheme
//! used for instances whose address has none, and what happens to unknown names.
//!
//! Every option has a default and a `with_x` setter; the struct also deserializes with serde
//! (durations as `"500ms"`, `"10s"` or a number of seconds).
//!
//! ```
//! use std::time::Duration;
//! use sdkit_http::{Config, Scheme};
//!
//! let config = Config::default()
//!     .with_attempt_timeout(Duration::from_millis(500))
//!     .with_timeout(Duration::from_secs(3))
//!     .with_max_attempts(4)
//!     .with_scheme(Scheme::Https);
//! assert_eq!(config.max_attempts(), 4);
//!
//! let config: Config = serde_json::from_str(r#"{"timeout": "2s", "max_attempts": 2}"#).unwrap();
//! assert_eq!(config.timeout(), Duration::from_secs(2));
//! ```

use std::time::Duration;

use sdkit_core::Backoff;
use serde::Deserialize;

/// The scheme used to reach an instance whose address carries none (`10.0.0.1:8080`). An address
/// written `http://…` or `https://…` keeps its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTPS; the instance's host is the TLS server name.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What the [`Client`](crate::Client) does with a request whose host is not a registered service
/// name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownNames {
    /// Fail with [`Error::UnknownService`](crate::Error::UnknownService): the bare name is never
    /// looked up in DNS (the default).
    #[default]
    Reject,
    /// Send the request unchanged (for a middleware shared with calls to ordinary hosts).
    Passthrough,
}

/// Configuration of a [`Client`](crate::Client). See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    attempt_timeout: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    timeout: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    connect_timeout: Duration,
    max_attempts: u32,
    scheme: Scheme,
    unknown_names: UnknownNames,
    retry_statuses: bool,
    #[serde(deserialize_with = "header_name")]
    request_hash_header: Option<http::HeaderName>,
    #[serde(skip)]
    backoff: Backoff,
}

/// A header name from a config: any valid one, lowercased.
fn header_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<http::HeaderName>, D::Error> {
    let name = String::deserialize(deserializer)?;
    http::HeaderName::from_bytes(name.as_bytes())
        .map(Some)
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "request_hash_header: `{}` is not a valid header name",
                name.escape_debug()
            ))
        })
}

impl Default for Config {
    /// Attempts of 5 s, 3 attempts within 10 s (waiting for instances included), connect timeout
    /// 2 s, backoff 10 ms → 500 ms, `http`, unknown names rejected, 502/503/504 retried.
    fn default() -> Self {
        Config {
            attempt_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_attempts: 3,
            scheme: Scheme::Http,
            unknown_names: UnknownNames::Reject,
            retry_statuses: true,
            request_hash_header: None,
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(500)),
        }
    }
}

impl Config {
    /// Sets the timeout of one attempt, up to the response's headers.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Sets the total time of a call: waiting for an instance, every attempt and the backoff
    /// between them.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the TCP (and TLS) connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the number of attempts, the first included (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the scheme for instance addresses without one.
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Sets what happens to requests for hosts that are not registered names.
    pub fn with_unknown_names(mut self, unknown: UnknownNames) -> Self {
        self.unknown_names = unknown;
        self
    }

    /// Whether 502, 503 and 504 answers to idempotent requests are retried (default `true`).
    pub fn with_retry_statuses(mut self, retry: bool) -> Self {
        self.retry_statuses = retry;
        self
    }

    /// Reads each request's hash key from header `name` (several values joined with `,`), for
    /// a consistent-hashing balancer (`ring_hash`, `maglev`, through
    /// [`Client::with_balancer`](crate::Client::with_balancer)): requests with the same value
    /// go to the same instance while it stays ready, and a retry leaves a failed one for the
    /// key's next. A request without the header gets a random hash. Other balancers ignore it.
    ///
    /// ```
    /// use sdkit_http::Config;
    ///
    /// let config = Config::default().with_request_hash_header(http::HeaderName::from_static("x-user-id"));
    /// assert_eq!(config.request_hash_header().map(|h| h.as_str()), Some("x-user-id"));
    /// let config: Config = serde_json::from_str(r#"{"request_hash_header": "x-user-id"}"#).unwrap();
    /// assert_eq!(config.request_hash_header().map(|h| h.as_str()), Some("x-user-id"));
    /// assert!(serde_json::from_str::<Config>(r#"{"request_hash_header": "x user"}"#).is_err());
    /// ```
    pub fn with_request_hash_header(mut self, name: http::HeaderName) -> Self {
        self.request_hash_header = Some(name);
        self
    }

    /// Sets the backoff between attempts.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The timeout of one attempt.
    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    /// The total time of a call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The number of attempts.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The scheme for addresses without one.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// What happens to unknown names.
    pub fn unknown_names(&self) -> UnknownNames {
        self.unknown_names
    }

    /// Whether 502/503/504 are retried for idempotent requests.
    pub fn retry_statuses(&self) -> bool {
        self.retry_statuses
    }

    /// The request hash header, if set.
    pub fn request_hash_header(&self) -> Option<&http::HeaderName> {
        self.request_hash_header.as_ref()
    }

    /// The backoff between attempts.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
}
