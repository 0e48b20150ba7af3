//! The wire: a small Eureka REST client on hyper 1 (plain HTTP/1.1).
//!
//! It speaks the endpoints sdkit needs — `GET {base}/apps/{APP}`, `GET {base}/apps/delta`,
//! `POST {base}/apps/{APP}`, `PUT {base}/apps/{APP}/{ID}` (heartbeat) and
//! `DELETE {base}/apps/{APP}/{ID}` — with `Accept: application/json`. Every request has a
//! timeout and reads at most `max_body_bytes`; basic credentials go in the `Authorization`
//! header, never in a URL or a log. The servers are tried in turn: a transport error, a timeout
//! or a 5xx moves on to the next server (and the next request starts there).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::Config;
use crate::error::Error;

/// Characters escaped in a path segment (application names and instance ids).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The most of an error body kept in an [`Error::Status`].
const ERROR_BODY_CHARS: usize = 200;

/// A Eureka client: cheap to clone (clones share a connection pool). Never touches the network
/// when constructed.
///
/// ```
/// use sdkit_eureka::{Client, Config};
///
/// let client = Client::new(Config::new(["127.0.0.1:8761"])).unwrap();
/// assert_eq!(client.config().base_urls(), ["http://127.0.0.1:8761/eureka"]);
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    bases: Vec<String>,
    authorization: Option<String>,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    /// The server the next request starts with.
    current: AtomicUsize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("eureka::Client")
            .field("servers", &self.inner.bases)
            .field("user", &self.inner.config.user())
            .finish_non_exhaustive()
    }
}

/// An answer: status and (bounded) body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub url: String,
}

impl Client {
    /// A client for `config` (validated; nothing is sent yet).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the configuration is unusable.
    pub fn new(config: Config) -> Result<Client, Error> {
        config.validate()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout()));
        connector.set_nodelay(true);
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        let authorization = match (config.user(), config.password()) {
            (Some(user), Some(password)) => Some(format!(
                "Basic {}",
                base64(format!("{user}:{}", password.expose()).as_bytes())
            )),
            _ => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                bases: config.base_urls(),
                config,
                authorization,
                http,
                current: AtomicUsize::new(0),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// `path` segment escaped for a URL.
    pub(crate) fn segment(value: &str) -> String {
        utf8_percent_encode(value, SEGMENT).to_string()
    }

    /// Sends `method path` (relative to the base URL) to the servers in turn until one answers
    /// with something other than a 5xx.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        let servers = self.inner.bases.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..servers {
            let index = (start + attempt) % servers;
            let url = format!("{}{path}", self.inner.bases[index]);
            match self.send_once(method.clone(), &url, body.clone()).await {
                Ok(answer) if !answer.status.is_server_error() => {
                    self.inner.current.store(index, Ordering::Relaxed);
                    return Ok(answer);
                }
                Ok(answer) => last = Some(status_error(&method, &answer)),
                Err(error) => last = Some(error),
            }
            // This server failed: the next request starts with the next one.
            self.inner
                .current
                .store((index + 1) % servers, Ordering::Relaxed);
            if let Some(error) = &last {
                tracing::debug!(%error, "eureka: trying the next server");
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("no server".into())))
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        let name = method_name(&method);
        let transport = |reason: String| Error::Transport {
            method: name,
            url: url.to_owned(),
            reason,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .header(header::ACCEPT, "application/json");
        if let Some(authorization) = &self.inner.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| transport(e.to_string()))?;
        let timeout = self.inner.config.request_timeout();
        let max = self.inner.config.max_body_bytes();
        let exchange = async {
            let response = self
                .inner
                .http
                .request(request)
                .await
                .map_err(|e| transport(error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), max)
                .collect()
                .await
                .map_err(|e| Error::Malformed {
                    url: url.to_owned(),
                    reason: format!("body unreadable or larger than {max} bytes: {e}"),
                })?
                .to_bytes();
            Ok(Answer {
                status,
                body,
                url: url.to_owned(),
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    method: name,
                    url: url.to_owned(),
                    timeout,
                })
            })
    }
}

/// The error for an unexpected status.
pub(crate) fn status_error(method: &Method, answer: &Answer) -> Error {
    Error::Status {
        method: method_name(method),
        url: answer.url.clone(),
        status: answer.status.as_u16(),
        body: String::from_utf8_lossy(&answer.body)
            .chars()
            .take(ERROR_BODY_CHARS)
            .collect(),
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Standard base64 with padding (for the basic-auth header only).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(Client::segment("a b/c:d"), "a%20b%2Fc%3Ad");
        assert_eq!(Client::segment("web-1.x_y"), "web-1.x_y");
    }
}
