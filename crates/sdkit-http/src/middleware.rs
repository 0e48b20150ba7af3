//! The client as a `reqwest_middleware::Middleware`, so it stacks with the middlewares reqwest
//! users already have (tracing, auth headers, metrics).
//!
//! A request whose host is a registered name is resolved and sent by the sdkit [`Client`] —
//! balancer, safe retries, outcomes fed back — and does **not** go on down the stack: put the
//! [`NameResolver`] last. A request for another host goes on down the stack unchanged with
//! [`UnknownNames::Passthrough`](crate::UnknownNames::Passthrough), and fails with
//! [`Error::UnknownService`](crate::Error::UnknownService) otherwise (never a DNS lookup of
//! the bare name). Errors are `reqwest_middleware::Error::Middleware` wrapping an
//! [`Error`](crate::Error) (`error.downcast_ref::<sdkit_http::Error>()` on the inner
//! `anyhow::Error`).
//!
//! ```no_run
//! use sdkit_http::{Client, Config};
//!
//! # async fn run(client: Client) -> Result<(), reqwest_middleware::Error> {
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     // .with(TracingMiddleware::default())   // the middlewares you already have…
//!     .with(client.middleware())               // …then name resolution, last.
//!     .build();
//! let body = http.get("http://web/health").send().await?.text().await?;
//! # Ok(()) }
//! ```

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::client::Client;

/// Resolves service names inside a `reqwest_middleware` stack. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct NameResolver {
    client: Client,
}

impl Client {
    /// The middleware form of this client, for a `reqwest_middleware` stack.
    pub fn middleware(&self) -> NameResolver {
        NameResolver::new(self.clone())
    }
}

impl NameResolver {
    /// The middleware form of `client`.
    pub fn new(client: Client) -> Self {
        NameResolver { client }
    }

    /// The client it resolves through.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait::async_trait]
impl Middleware for NameResolver {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        match self.client.resolve(request.url()) {
            Ok(Some(service)) => self
                .client
                .call(&service, request)
                .await
                .map_err(reqwest_middleware::Error::middleware),
            Ok(None) => next.run(request, extensions).await,
            Err(error) => Err(reqwest_middleware::Error::middleware(error)),
        }
    }
}
