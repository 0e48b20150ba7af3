//! One HTTP request to a discovery node: the form, the `x1-bmspy-timeout` budget, the bearer
//! token, the bounded exchange (`sdkit-hyper`) and the reply envelope; errors name the node and
//! the endpoint.

use std::time::Duration;

use bytes::Bytes;
use sdkit_discovery_proto::{Code, Endpoint, Form, Method, Reply, decode_reply};
use sdkit_hyper::{Body, ExchangeError};
use serde::de::DeserializeOwned;

use super::Inner;
use crate::Error;

/// The header through which a bm-compatible server shortens its hold to the caller's budget.
pub(super) const BMSPY_TIMEOUT: &str = "x1-bmspy-timeout";
/// What a bm server subtracts from `x1-bmspy-timeout` before using it as the deadline.
pub(super) const BMSPY_MARGIN: Duration = Duration::from_millis(20);

impl Inner {
    /// One request to the current node; a transport failure or an unexpected code rotates.
    pub(crate) async fn call_current<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        form: &Form,
    ) -> Result<(String, Reply<T>), Error> {
        let node = self.nodes().current();
        match self
            .call(&node, endpoint, form, self.config.request_timeout)
            .await
        {
            Ok(reply) => Ok((node, reply)),
            Err(e) => {
                self.nodes().failed(&node);
                Err(e)
            }
        }
    }

    /// One request to `node`. `budget` is what the server may spend (sent as
    /// `x1-bmspy-timeout`); the HTTP timeout adds `poll_slack` for long polls.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        node: &str,
        endpoint: Endpoint,
        form: &Form,
        budget: Duration,
    ) -> Result<Reply<T>, Error> {
        let path = endpoint.path();
        let timeout = if endpoint == Endpoint::Polls {
            budget + self.config.poll_slack
        } else {
            budget
        };
        let encoded = form.encode();
        let mut builder = http::Request::builder()
            .header(BMSPY_TIMEOUT, budget.as_millis().to_string())
            .header(http::header::USER_AGENT, "sdkit-discovery");
        if let Some(token) = &self.config.token {
            // The only place the token is exposed: the wire. Marked sensitive for hyper.
            let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.expose()))
                .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        let request = match endpoint.method() {
            Method::Get => builder
                .method(http::Method::GET)
                .uri(format!("http://{node}{path}?{encoded}"))
                .body(Body::new(Bytes::new())),
            Method::Post => builder
                .method(http::Method::POST)
                .uri(format!("http://{node}{path}"))
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(Body::new(Bytes::from(encoded))),
        }
        .map_err(|e| transport(node, path, e))?;
        let max_body = self.config.max_body;
        let response = sdkit_hyper::exchange(&self.http, request, timeout, max_body)
            .await
            .map_err(|e| match e {
                ExchangeError::Timeout(timeout) => Error::Timeout {
                    node: node.to_owned(),
                    endpoint: path,
                    timeout,
                },
                ExchangeError::TooLarge { max } => {
                    malformed(node, path, format!("reply body exceeds {max} bytes"))
                }
                ExchangeError::Transport(source) => transport(node, path, source),
                other => transport(node, path, other),
            })?;
        if response.status != http::StatusCode::OK {
            return Err(Error::Http {
                node: node.to_owned(),
                endpoint: path,
                status: response.status.as_u16(),
            });
        }
        decode_reply::<T>(&response.body, max_body).map_err(|e| malformed(node, path, e))
    }
}

pub(super) fn transport(
    node: &str,
    endpoint: &'static str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Transport {
        node: node.to_owned(),
        endpoint,
        source: e.into(),
    }
}

pub(super) fn malformed(
    node: &str,
    endpoint: &'static str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Malformed {
        node: node.to_owned(),
        endpoint,
        source: e.into(),
    }
}

pub(crate) fn code_error(node: &str, endpoint: Endpoint, code: Code, message: &str) -> Error {
    Error::Code {
        node: node.to_owned(),
        endpoint: endpoint.path(),
        code,
        message: message.chars().take(200).collect(),
    }
}
