//! The name-resolving client: `http://<name>/path` goes to an instance of the service registered
//! as `<name>`, through sdkit's balancer and retry.
//!
//! ```no_run
//! use sdkit_core::{FixedInstancer, Instance};
//! use sdkit_http::{Client, Config};
//!
//! # #[tokio::main] async fn main() -> Result<(), sdkit_http::Error> {
//! let client = Client::new(Config::default())?;
//! client.add_instancer(
//!     "web",
//!     "static://10.0.0.1:8080,10.0.0.2:8080",
//!     FixedInstancer::new(vec![Instance::from_addr("10.0.0.1:8080"), Instance::from_addr("10.0.0.2:8080")]),
//! )?;
//! let response = client.get("http://web/health").await?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! A call waits for the service's first instance within the total timeout, then makes up to
//! `max_attempts` attempts (the [`attempt`](crate::attempt) rules decide which failures are
//! retried), each on an instance that has not failed this call while another is available.
//! A 5xx answer that is not retried is returned as the response; a call that ends without one
//! is an [`Error`] naming the service and its registry, with every attempt's error.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use sdkit_core::lb::hash::RequestHash;
use sdkit_core::retry::{BudgetExhausted, RetryError};
use sdkit_core::{EndpointSet, Instancer, NoEndpoints};
use url::Url;

use crate::attempt::{Call, Served};
use crate::config::{Config, UnknownNames};
use crate::endpoint::{Endpoint, EndpointFactory};
use crate::error::{AttemptError, Error};
use crate::registry::{MakeBalancer, Service, Source, round_robin};

type Services = HashMap<Arc<str>, Arc<Service>>;

struct Inner {
    config: Config,
    http: reqwest::Client,
    factory: EndpointFactory,
    services: ArcSwap<Services>,
    /// Serialises writers of `services` (readers never take it).
    writers: Mutex<()>,
    make_balancer: MakeBalancer,
}

/// A client that resolves service names. Cheap to clone. See the [module docs](self).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("services", &self.services())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with its own `reqwest::Client` (rustls, webpki roots, the configured connect
    /// timeout). Touches no network.
    ///
    /// # Errors
    ///
    /// [`Error::Build`] when reqwest cannot build its client (TLS setup).
    pub fn new(config: Config) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(Error::Build)?;
        Ok(Client::with_reqwest(config, http))
    }

    /// A client sending through `http` (for custom TLS roots, proxies, default headers…).
    pub fn with_reqwest(config: Config, http: reqwest::Client) -> Client {
        let factory = EndpointFactory::new(http.clone(), &config);
        Client {
            inner: Arc::new(Inner {
                config,
                http,
                factory,
                services: ArcSwap::from_pointee(HashMap::new()),
                writers: Mutex::new(()),
                make_balancer: round_robin(),
            }),
        }
    }

    /// Uses `make` to build the balancer of every service added from now on (round-robin by
    /// default).
    pub fn with_balancer(self, make: MakeBalancer) -> Client {
        let inner = &self.inner;
        Client {
            inner: Arc::new(Inner {
                config: inner.config.clone(),
                http: inner.http.clone(),
                factory: inner.factory.clone(),
                services: ArcSwap::new(inner.services.load_full()),
                writers: Mutex::new(()),
                make_balancer: make,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The `reqwest::Client` every endpoint sends through.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Registers `name`: requests to `http://<name>/…` go to instances from `source` (for
    /// example an `sdkit::Target`). Replaces an earlier registration of the same name.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `name` is not a valid host name; [`Error::Source`] when the
    /// source cannot build its instancer.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime (the endpointer runs a task).
    pub fn add_service(&self, name: &str, source: &dyn Source) -> Result<(), Error> {
        let registry = source.registry();
        let instancer = source.instancer().map_err(|e| Error::Source {
            service: name.to_owned(),
            registry: registry.clone(),
            message: e.to_string(),
        })?;
        self.add_boxed(name, registry, instancer)
    }

    /// Registers `name` with an instancer; `registry` describes it in errors (keep secrets out).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `name` is not a valid host name.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn add_instancer(
        &self,
        name: &str,
        registry: impl Into<String>,
        instancer: impl Instancer + 'static,
    ) -> Result<(), Error> {
        self.add_boxed(name, registry.into(), Box::new(instancer))
    }

    fn add_boxed(
        &self,
        name: &str,
        registry: String,
        instancer: Box<dyn Instancer>,
    ) -> Result<(), Error> {
        let key = normalize(name)?;
        let service = Service::new(
            &key,
            registry,
            instancer,
            self.inner.factory.clone(),
            &self.inner.make_balancer,
            &self.inner.config,
        );
        self.update(|services| services.insert(key.into(), Arc::new(service)));
        Ok(())
    }

    /// Publishes a changed copy of the name table (readers never wait).
    fn update<T>(&self, change: impl FnOnce(&mut Services) -> T) -> T {
        let _writer = self
            .inner
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut services = Services::clone(&self.inner.services.load());
        let result = change(&mut services);
        self.inner.services.store(Arc::new(services));
        result
    }

    /// Forgets `name`; its instancer and endpoints stop once no call uses them. Returns whether
    /// it was registered.
    pub fn remove_service(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.update(|services| services.remove(name.as_str()).is_some())
    }

    /// The registered names, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .services
            .load()
            .keys()
            .map(ToString::to_string)
            .collect();
        names.sort_unstable();
        names
    }

    /// The live endpoint set of `name` (to watch its instances).
    pub fn endpoint_set(&self, name: &str) -> Option<EndpointSet<Endpoint>> {
        self.service(name)
            .map(|service| service.endpointer.endpoint_set())
    }

    /// Waits at most `timeout` until `name` has an instance; returns how many it has.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownService`] or [`Error::NoInstances`].
    pub async fn ready(&self, name: &str, timeout: Duration) -> Result<usize, Error> {
        let service = self
            .service(name)
            .ok_or_else(|| self.unknown(name.to_owned()))?;
        service.ready(timeout).await?;
        Ok(service.endpointer.endpoints().len())
    }

    /// A request builder on the underlying `reqwest::Client`; send the built request with
    /// [`execute`](Self::execute).
    pub fn request(&self, method: http::Method, url: &str) -> reqwest::RequestBuilder {
        self.inner.http.request(method, url)
    }

    /// `GET url`.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute); [`Error::Invalid`] for a malformed URL.
    pub async fn get(&self, url: &str) -> Result<reqwest::Response, Error> {
        let request = self
            .inner
            .http
            .get(url)
            .build()
            .map_err(|e| Error::Invalid(crate::error::chain(&e.without_url())))?;
        self.execute(request).await
    }

    /// Sends `request`: its host names a registered service, resolved to an instance through the
    /// balancer, with safe retries. The response carries a [`Served`] extension.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownService`], [`Error::NoInstances`], [`Error::Attempts`],
    /// [`Error::Invalid`]; [`Error::Reqwest`] for a request passed through unchanged.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, Error> {
        match self.resolve(request.url())? {
            Some(service) => self.call(&service, request).await,
            None => Ok(self.inner.http.execute(request).await?),
        }
    }

    /// The service a URL names: `Ok(None)` for an unknown name passed through.
    pub(crate) fn resolve(&self, url: &Url) -> Result<Option<Arc<Service>>, Error> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Invalid(format!(
                "scheme `{}` (expected http or https)",
                url.scheme()
            )));
        }
        let Some(host) = url.host_str() else {
            return Err(Error::Invalid("the URL has no host".to_owned()));
        };
        match self.service(host) {
            Some(service) => Ok(Some(service)),
            None if self.inner.config.unknown_names() == UnknownNames::Passthrough => Ok(None),
            None => Err(self.unknown(host.to_owned())),
        }
    }

    fn service(&self, name: &str) -> Option<Arc<Service>> {
        self.inner.services.load().get(name).cloned()
    }

    fn unknown(&self, name: String) -> Error {
        let names = self.services();
        Error::UnknownService {
            name,
            registered: if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
        }
    }

    /// One call to a registered service.
    pub(crate) async fn call(
        &self,
        service: &Service,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, Error> {
        let config = &self.inner.config;
        let started = tokio::time::Instant::now();
        let waited = service.ready(config.timeout()).await?;
        let hash = config.request_hash_header().and_then(|name| {
            let values = request.headers().get_all(name).iter().map(|v| v.as_bytes());
            RequestHash::of_values(values).map(|RequestHash(hash)| hash)
        });
        let call = Call::new(request, config.retry_statuses());
        let result = if waited {
            let budget = config.timeout().saturating_sub(started.elapsed());
            service
                .retry_within(budget)
                .call_with_hash(call.clone(), hash)
                .await
        } else {
            service.retry.call_with_hash(call.clone(), hash).await
        };
        match result {
            Ok(response) => Ok(response),
            Err(error) => finish(service, &call, error, config.timeout()),
        }
    }
}

/// A retry that gave up: the last 5xx answer is the response; "no endpoint" throughout is
/// [`Error::NoInstances`]; anything else keeps every attempt's error.
fn finish(
    service: &Service,
    call: &Call,
    error: RetryError,
    timeout: Duration,
) -> Result<reqwest::Response, Error> {
    if let Some(attempt) = error.final_error().and_then(AttemptError::find)
        && let Some(mut response) = attempt.take_response()
    {
        let mut served = call.served(&Arc::from(attempt.addr()), &Arc::from(attempt.addr()));
        served.failed.pop();
        response.extensions_mut().insert::<Served>(served);
        return Ok(response);
    }
    let errors = error.errors();
    if errors.iter().any(|e| e.is::<NoEndpoints>())
        && errors
            .iter()
            .all(|e| e.is::<NoEndpoints>() || e.is::<BudgetExhausted>())
    {
        return Err(service.no_instances(timeout));
    }
    Err(Error::Attempts {
        service: service.name.to_string(),
        registry: service.registry.to_string(),
        source: error,
    })
}

/// A registered name: a valid host, compared in lower case.
fn normalize(name: &str) -> Result<String, Error> {
    let url = Url::parse(&format!("http://{name}/"))
        .map_err(|e| Error::Invalid(format!("service name `{name}`: {e}")))?;
    match url.host_str() {
        Some(host) if host == name.to_ascii_lowercase() && url.port().is_none() => {
            Ok(host.to_owned())
        }
        _ => Err(Error::Invalid(format!(
            "service name `{name}` is not a bare host name"
        ))),
    }
}
