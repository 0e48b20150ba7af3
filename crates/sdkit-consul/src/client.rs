//! The wire: a small Consul HTTP client on hyper 1 (no Consul API crate).
//!
//! It speaks exactly the endpoints sdkit needs — `GET /v1/health/service/:name` (blocking),
//! `PUT /v1/agent/service/register`, `PUT /v1/agent/service/deregister/:id`,
//! `GET /v1/agent/service/:id` and `PUT /v1/agent/check/pass/:id` — over HTTP/1.1, with TLS
//! through rustls when configured. Every request carries the ACL token in `X-Consul-Token`
//! (never in the URL, where it would reach access logs), has a timeout, and reads at most
//! [`Config::max_body_bytes`] of the answer. The client is cheap to clone (clones share one
//! connection pool).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use sdkit_hyper::{Body, ExchangeError};

use sdkit_core::Secret;

use crate::config::{Config, TlsConfig};
use crate::error::Error;
use crate::tls::tls_config;
pub use crate::wire::{
    AgentService, CheckDefinition, CheckPass, HealthCheck, HealthQuery, HealthResponse, Node,
    ServiceEntry, ServiceRegistration, ServiceWeights,
};

/// The most of an error body kept in an [`Error::Status`].
const ERROR_BODY_CHARS: usize = 256;

/// A Consul HTTP client. Cheap to clone. Its `Debug` shows the address, never the token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient<HttpsConnector<HttpConnector>, Body>,
    /// `scheme://authority`, no trailing slash.
    base: String,
    token: Option<Secret>,
    request_timeout: Duration,
    max_body: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("consul::Client")
            .field("base", &self.inner.base)
            .field("token", &self.inner.token)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the agent in `config`. Does not touch the network.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unusable address or TLS material.
    pub fn new(config: Config) -> Result<Self, Error> {
        let address = config.address.trim().trim_end_matches('/');
        let base = if address.starts_with("http://") || address.starts_with("https://") {
            if config.tls.is_some() && address.starts_with("http://") {
                return Err(Error::Config(
                    "TLS settings given for an http:// address".into(),
                ));
            }
            address.to_string()
        } else if config.tls.is_some() {
            format!("https://{address}")
        } else {
            format!("http://{address}")
        };
        let uri: Uri = base
            .parse()
            .map_err(|e| Error::Config(format!("address {address:?}: {e}")))?;
        if uri.authority().is_none() || uri.path().len() > 1 {
            return Err(Error::Config(format!(
                "address {address:?}: expected host:port"
            )));
        }
        let tls = tls_config(config.tls.as_ref().unwrap_or(&TlsConfig::default()))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(sdkit_hyper::connector(config.connect_timeout));
        let http = sdkit_hyper::pooled(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                token: config.token.clone(),
                request_timeout: config.request_timeout,
                max_body: config.max_body_bytes,
            }),
        })
    }

    /// `scheme://host:port` of the agent.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// `GET /v1/health/service/:name`, blocking when `query.index > 0`.
    ///
    /// The HTTP timeout is `wait + wait/16` (Consul's jitter) plus the request timeout, so a
    /// blocking query is never cut short by the client.
    ///
    /// # Errors
    ///
    /// Transport failures, timeouts, non-2xx answers and malformed bodies.
    pub async fn health_service(
        &self,
        service: &str,
        query: &HealthQuery<'_>,
    ) -> Result<HealthResponse, Error> {
        let what = format!("GET /v1/health/service/{service}");
        let mut params: Vec<(&str, String)> = Vec::new();
        if query.passing {
            params.push(("passing", "true".into()));
        }
        if let Some(dc) = query.datacenter.filter(|d| !d.is_empty()) {
            params.push(("dc", dc.into()));
        }
        if let Some(filter) = query.filter.filter(|f| !f.is_empty()) {
            params.push(("filter", filter.into()));
        }
        let mut timeout = self.inner.request_timeout;
        if query.index > 0 {
            params.push(("index", query.index.to_string()));
            params.push(("wait", sdkit_core::duration::format(query.wait)));
            timeout = query.wait + query.wait / 16 + self.inner.request_timeout;
        }
        let mut qs = {
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &params {
                serializer.append_pair(k, v);
            }
            serializer.finish()
        };
        if query.stale {
            if !qs.is_empty() {
                qs.push('&');
            }
            qs.push_str("stale");
        }
        let mut path = format!("/v1/health/service/{}", path_segment(service));
        if !qs.is_empty() {
            path.push('?');
            path.push_str(&qs);
        }
        let (status, headers, body) = self.call(Method::GET, &path, None, timeout, &what).await?;
        check_status(status, &body, &what)?;
        let index = headers
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let entries: Vec<ServiceEntry> =
            serde_json::from_slice(&body).map_err(|e| Error::Malformed {
                what: what.clone(),
                detail: format!("invalid service entries JSON: {e}"),
            })?;
        Ok(HealthResponse { entries, index })
    }

    /// `PUT /v1/agent/service/register?replace-existing-checks=true`.
    ///
    /// # Errors
    ///
    /// Transport failures, timeouts and non-2xx answers.
    pub async fn register(&self, registration: &ServiceRegistration) -> Result<(), Error> {
        let what = format!("register service {:?}", registration.id);
        let body = serde_json::to_vec(registration).map_err(|e| Error::Config(e.to_string()))?;
        let (status, _, resp) = self
            .call(
                Method::PUT,
                "/v1/agent/service/register?replace-existing-checks=true",
                Some(body),
                self.inner.request_timeout,
                &what,
            )
            .await?;
        check_status(status, &resp, &what)
    }

    /// `PUT /v1/agent/service/deregister/:id`; an unknown service counts as done
    /// (returns `Ok(false)`).
    ///
    /// # Errors
    ///
    /// Transport failures, timeouts and other non-2xx answers.
    pub async fn deregister(&self, service_id: &str) -> Result<bool, Error> {
        let what = format!("deregister service {service_id:?}");
        let path = format!("/v1/agent/service/deregister/{}", path_segment(service_id));
        let (status, _, body) = self
            .call(Method::PUT, &path, None, self.inner.request_timeout, &what)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        check_status(status, &body, &what).map(|()| true)
    }

    /// `PUT /v1/agent/check/pass/:id`: one TTL heartbeat.
    ///
    /// A 404 (`Unknown check ID`, Consul ≥ 1.11) or a 500 saying the check is unknown or has no
    /// TTL (older agents) means the agent lost the registration: [`CheckPass::Unknown`].
    ///
    /// # Errors
    ///
    /// Transport failures, timeouts and other non-2xx answers.
    pub async fn pass_check(&self, check_id: &str) -> Result<CheckPass, Error> {
        let what = format!("pass check {check_id:?}");
        let path = format!("/v1/agent/check/pass/{}", path_segment(check_id));
        let (status, _, body) = self
            .call(Method::PUT, &path, None, self.inner.request_timeout, &what)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(CheckPass::Unknown);
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let text = String::from_utf8_lossy(&body).to_ascii_lowercase();
            if text.contains("unknown check") || text.contains("does not have associated ttl") {
                return Ok(CheckPass::Unknown);
            }
        }
        check_status(status, &body, &what).map(|()| CheckPass::Passed)
    }

    /// `GET /v1/agent/service/:id`: `true` when the agent knows the service.
    ///
    /// # Errors
    ///
    /// Transport failures, timeouts and non-2xx answers other than 404.
    pub async fn service_exists(&self, service_id: &str) -> Result<bool, Error> {
        let what = format!("read service {service_id:?}");
        let path = format!("/v1/agent/service/{}", path_segment(service_id));
        let (status, _, body) = self
            .call(Method::GET, &path, None, self.inner.request_timeout, &what)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        check_status(status, &body, &what).map(|()| true)
    }

    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        what: &str,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Error> {
        let uri = format!("{}{}", self.inner.base, path_and_query);
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.inner.token {
            builder = builder.header("X-Consul-Token", token.expose());
        }
        if body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        let request = builder
            .body(Body::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Config(format!("{what}: cannot build request: {e}")))?;
        let response =
            sdkit_hyper::exchange(&self.inner.http, request, timeout, self.inner.max_body)
                .await
                .map_err(|e| match e {
                    ExchangeError::Timeout(timeout) => Error::Timeout {
                        what: what.to_string(),
                        timeout,
                    },
                    ExchangeError::TooLarge { max } => Error::Malformed {
                        what: what.to_string(),
                        detail: format!("body larger than {max} bytes"),
                    },
                    ExchangeError::Transport(source) => Error::Transport {
                        what: what.to_string(),
                        source,
                    },
                    other => Error::Transport {
                        what: what.to_string(),
                        source: Box::new(other),
                    },
                })?;
        Ok((response.status, response.headers, response.body))
    }
}

fn check_status(status: StatusCode, body: &[u8], what: &str) -> Result<(), Error> {
    if status.is_success() {
        return Ok(());
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(ERROR_BODY_CHARS)
        .collect();
    Err(Error::Status {
        what: what.to_string(),
        status: status.as_u16(),
        body: text,
    })
}

/// Everything but RFC 3986 unreserved characters is escaped in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment.
fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            Client::new(Config::new("127.0.0.1:8500"))
                .unwrap()
                .base_url(),
            "http://127.0.0.1:8500"
        );
        assert_eq!(
            Client::new(Config::new("https://[::1]:8501/"))
                .unwrap()
                .base_url(),
            "https://[::1]:8501"
        );
        assert_eq!(
            Client::new(Config::new("h:1").with_tls(TlsConfig::default()))
                .unwrap()
                .base_url(),
            "https://h:1"
        );
        assert!(Client::new(Config::new("http://h:1/x")).is_err());
        assert!(Client::new(Config::new("http://h:1").with_tls(TlsConfig::default())).is_err());
    }

    #[test]
    fn tls_errors_name_the_file() {
        let cfg =
            Config::new("h:1").with_tls(TlsConfig::default().with_ca_file("/nonexistent/ca.pem"));
        let e = Client::new(cfg.clone()).unwrap_err().to_string();
        assert!(
            e.contains("consul") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let cfg = Config::new("h:1").with_tls(TlsConfig::default().with_ca_pem("not a pem"));
        assert!(Client::new(cfg.clone()).is_err());
        let tls = TlsConfig {
            cert_file: Some("/x".into()),
            ..TlsConfig::default()
        };
        assert!(Client::new(Config::new("h:1").with_tls(tls)).is_err());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("web-1.a_b~"), "web-1.a_b~");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
