//! One HTTP endpoint per instance: a `tower::Service` that sends a request to that instance.
//!
//! The [`EndpointFactory`] is a ready-made [`Factory`] for the
//! [`Endpointer`](sdkit_core::Endpointer): it reads each instance's address — `10.0.0.1:8080`,
//! `[::1]:8080`, or with a scheme, `http://…` / `https://…` — and makes an [`Endpoint`] that
//! fills in the scheme and authority of every request it sends. With `https` the instance's host
//! is the TLS server name. Endpoints share one `reqwest::Client` (its connection pool), so making
//! one is cheap and connects lazily.
//!
//! An endpoint sends one attempt: it never retries. A connect failure, a timeout or a 5xx answer
//! ends the attempt with an [`AttemptError`] that says what happened
//! ([`AttemptFailure`]); a 5xx keeps the response inside. Made by the endpointer through
//! [`Factory::make_with_state`], the endpoint marks its instance not ready after a connect
//! failure and ready again once it answers (see `feedback.rs`); as a service of a [`Call`] it
//! tags its errors with the core's failure class so the balancer's guard records them.
//!
//! ```
//! use sdkit_core::{Factory, Instance};
//! use sdkit_http::{Config, EndpointFactory};
//!
//! let factory = EndpointFactory::new(reqwest::Client::new(), &Config::default());
//! let endpoint = factory.make(&Instance::new("web-1", "https://web-1.internal:8443")).unwrap();
//! assert_eq!(endpoint.base_url().as_str(), "https://web-1.internal:8443/");
//! let endpoint = factory.make(&Instance::new("web-2", "10.0.0.2:8080")).unwrap();
//! assert_eq!(endpoint.base_url().as_str(), "http://10.0.0.2:8080/");
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use sdkit_core::lb::{Classified, EndpointState};
use sdkit_core::registrar::BoxFuture;
use sdkit_core::{BoxError, Factory, Instance};
use url::Url;

use crate::attempt::Call;
use crate::config::{Config, Scheme};
use crate::error::{AttemptError, AttemptFailure, chain};
use crate::feedback::Feedback;

/// Makes an [`Endpoint`] per instance. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct EndpointFactory {
    http: reqwest::Client,
    scheme: Scheme,
    attempt_timeout: Duration,
}

impl EndpointFactory {
    /// Endpoints sending through `http` (one shared pool), with `config`'s default scheme and
    /// attempt timeout.
    pub fn new(http: reqwest::Client, config: &Config) -> Self {
        EndpointFactory {
            http,
            scheme: config.scheme(),
            attempt_timeout: config.attempt_timeout(),
        }
    }

    fn build(
        &self,
        instance: &Instance,
        state: Option<Arc<EndpointState>>,
    ) -> Result<Endpoint, BoxError> {
        let addr = instance.addr();
        let text = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("{}://{addr}", self.scheme.as_str())
        };
        let bad = |why: &str| format!("instance {}: bad address `{addr}`: {why}", instance.id());
        let mut base = Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme is neither http nor https").into());
        }
        if base.host_str().is_none_or(str::is_empty) || base.port_or_known_default().is_none() {
            return Err(bad("no host").into());
        }
        if !addr.contains("://") && base.port().is_none() && !has_explicit_port(addr) {
            return Err(bad("is not host:port").into());
        }
        base.set_path("/");
        base.set_query(None);
        base.set_fragment(None);
        Ok(Endpoint {
            inner: Arc::new(Inner {
                http: self.http.clone(),
                id: instance.id().into(),
                addr: addr.into(),
                base,
                attempt_timeout: self.attempt_timeout,
                feedback: Feedback::new(state),
            }),
        })
    }
}

/// `host:port` with a port (the default port of the scheme written out counts too).
fn has_explicit_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.ends_with(':') && port.parse::<u16>().is_ok())
}

impl Factory<Endpoint> for EndpointFactory {
    fn make(&self, instance: &Instance) -> Result<Endpoint, BoxError> {
        self.build(instance, None)
    }

    fn make_with_state(
        &self,
        instance: &Instance,
        state: &Arc<EndpointState>,
    ) -> Result<Endpoint, BoxError> {
        self.build(instance, Some(Arc::clone(state)))
    }
}

struct Inner {
    http: reqwest::Client,
    id: Arc<str>,
    addr: Arc<str>,
    base: Url,
    attempt_timeout: Duration,
    feedback: Feedback,
}

/// The endpoint of one instance. Cheap to clone. See the [module docs](self).
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.inner.id)
            .field("base", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The instance's identity.
    pub fn id(&self) -> &Arc<str> {
        &self.inner.id
    }

    /// The instance's address as the registry gave it.
    pub fn addr(&self) -> &Arc<str> {
        &self.inner.addr
    }

    /// The scheme and authority every request is sent to (`http://10.0.0.1:8080/`).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// `url` with its scheme and authority replaced by the instance's; path and query kept.
    pub fn target_url(&self, url: &Url) -> Url {
        let mut target = self.inner.base.clone();
        target.set_path(url.path());
        target.set_query(url.query());
        target
    }

    /// Sends `request` to this instance: one attempt, no retry. The request's scheme and
    /// authority are replaced by the instance's.
    ///
    /// # Errors
    ///
    /// An [`AttemptError`]: connect failure, timeout (the attempt timeout, up to the response
    /// headers), a transport failure, or a 5xx answer (kept inside the error).
    pub fn send(
        &self,
        request: reqwest::Request,
    ) -> BoxFuture<'static, Result<reqwest::Response, AttemptError>> {
        let this = self.clone();
        Box::pin(async move { this.attempt(request).await })
    }

    /// One attempt (see [`send`](Self::send)).
    async fn attempt(
        &self,
        mut request: reqwest::Request,
    ) -> Result<reqwest::Response, AttemptError> {
        *request.url_mut() = self.target_url(request.url());
        {
            let inner = &self.inner;
            let call = inner.http.execute(request);
            let result = match tokio::time::timeout(inner.attempt_timeout, call).await {
                Ok(Ok(response)) if response.status().is_server_error() => {
                    Err(AttemptError::status(&inner.addr, response))
                }
                Ok(Ok(response)) => Ok(response),
                Ok(Err(error)) => {
                    let failure = if error.is_connect() {
                        AttemptFailure::Connect
                    } else if error.is_timeout() {
                        AttemptFailure::Timeout
                    } else {
                        AttemptFailure::Transport
                    };
                    let error = error.without_url();
                    Err(AttemptError::new(&inner.addr, failure, Some(chain(&error))))
                }
                Err(_) => Err(AttemptError::new(
                    &inner.addr,
                    AttemptFailure::Timeout,
                    Some(format!(
                        "no answer within {}",
                        sdkit_core::duration::format(inner.attempt_timeout)
                    )),
                )),
            };
            match result.as_ref().map_err(AttemptError::failure) {
                Err(AttemptFailure::Connect) => self.connect_failed(),
                Err(AttemptFailure::Timeout) => {}
                _ => inner.feedback.reached(),
            }
            result
        }
    }
}

impl Endpoint {
    fn connect_failed(&self) {
        let base = &self.inner.base;
        let (Some(host), Some(port)) = (base.host_str(), base.port_or_known_default()) else {
            return;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        self.inner
            .feedback
            .connect_failed(host, port, Arc::downgrade(&self.inner));
    }
}

/// One attempt of a [`Call`]: the request (a copy, or the request itself once), the served
/// record on success, and on failure an [`AttemptError`] tagged with its failure class.
impl tower::Service<Call> for Endpoint {
    type Response = reqwest::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<reqwest::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let request = call.next_request();
        let this = self.clone();
        Box::pin(async move {
            let addr = &this.inner.addr;
            let result = match request {
                Some(request) => this.attempt(request).await,
                None => Err(AttemptError::new(
                    addr,
                    AttemptFailure::BodyNotReplayable,
                    None,
                )),
            };
            match result {
                Ok(mut response) => {
                    let served = call.served(&this.inner.id, addr);
                    response.extensions_mut().insert(served);
                    Ok(response)
                }
                Err(mut error) => {
                    call.failed(addr, &mut error);
                    let class = error.failure().class();
                    Err(Classified::new(class, error).into())
                }
            }
        })
    }
}

impl tower::Service<reqwest::Request> for Endpoint {
    type Response = reqwest::Response;
    type Error = AttemptError;
    type Future = BoxFuture<'static, Result<reqwest::Response, AttemptError>>;

    /// Always ready: reqwest queues on its pool.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: reqwest::Request) -> Self::Future {
        self.send(request)
    }
}

impl<B> tower::Service<http::Request<B>> for Endpoint
where
    B: Into<reqwest::Body>,
{
    type Response = reqwest::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<reqwest::Response, BoxError>>;

    /// Always ready: reqwest queues on its pool.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// Converts the request (a relative URI such as `/path` is fine: the instance fills in the
    /// scheme and authority) and sends it.
    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        if parts.uri.authority().is_none() {
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str);
            match http::Uri::builder()
                .scheme(self.inner.base.scheme())
                .authority("sdkit.invalid")
                .path_and_query(path)
                .build()
            {
                Ok(uri) => parts.uri = uri,
                Err(error) => return Box::pin(async move { Err(error.into()) }),
            }
        }
        let request = match reqwest::Request::try_from(http::Request::from_parts(parts, body)) {
            Ok(request) => request,
            Err(error) => return Box::pin(async move { Err(error.into()) }),
        };
        let send = self.send(request);
        Box::pin(async move { send.await.map_err(Into::into) })
    }
}
