//! The Eureka registrar, on the shared keep-alive driver of `sdkit-core`:
//!
//! * **register**: `POST /apps/{APP}` with the instance (status `UP`, `port.$` enabled,
//!   `leaseInfo`, metadata with `weight` and `zone`); 204 (or 200) is success;
//! * **renew**: the heartbeat `PUT /apps/{APP}/{ID}` every `heartbeat_interval` (30 s); a 404
//!   means the server forgot the instance (its lease expired during an outage, the server
//!   restarted): the driver registers again. Failures are retried with backoff, forever;
//! * **deregister**: `DELETE /apps/{APP}/{ID}` (a 404 counts as done) within
//!   `deregister_timeout`; dropping the registrar deregisters in the background.

use std::sync::Arc;

use http::{Method, StatusCode};
use sdkit_core::registrar::{
    BoxFuture, KeepAlive, KeepAliveConfig, Registration, RegistrationStatus, Renewal,
};
use sdkit_core::{BoxError, RegistrarError};

use crate::client::{Client, status_error};
use crate::config::{Config, RegistrarConfig};
use crate::error::Error;
use crate::wire;

/// Registers one instance in Eureka and heartbeats it. See the [module docs](self).
///
/// ```no_run
/// use sdkit_core::{Instance, Registrar as _};
/// use sdkit_eureka::{Config, Registrar, RegistrarConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let instance = Instance::new("web-1", "10.0.0.7:8080");
/// let registrar = Registrar::from_config(
///     Config::new(["127.0.0.1:8761"]),
///     RegistrarConfig::new("web", instance),
/// )?;
/// registrar.register().await?;
/// // … serve …
/// registrar.deregister().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Registrar {
    inner: KeepAlive<Steps>,
}

impl Registrar {
    /// Registers `config.instance()` through `client`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the instance address is not `host:port`, the id is empty, or the
    /// heartbeat interval is zero.
    pub fn new(client: &Client, config: RegistrarConfig) -> Result<Registrar, Error> {
        let instance = config.instance();
        let (host, port) = split_host_port(instance.addr()).ok_or_else(|| {
            Error::Config(format!(
                "instance address {:?} is not host:port",
                instance.addr()
            ))
        })?;
        if instance.id().is_empty()
            || config.app().is_empty()
            || config.heartbeat_interval().is_zero()
        {
            return Err(Error::Config(
                "an instance id, an application and a positive heartbeat interval are required"
                    .into(),
            ));
        }
        let body = wire::registration(
            config.app(),
            instance,
            host,
            port,
            config.lease_duration().as_secs().max(1),
            config.heartbeat_interval().as_secs().max(1),
        );
        let app = Client::segment(config.app());
        let steps = Steps {
            client: client.clone(),
            app_path: format!("/apps/{app}"),
            instance_path: format!("/apps/{app}/{}", Client::segment(instance.id())),
            body: body.to_string().into_bytes(),
        };
        let keep_alive = KeepAliveConfig::new(config.heartbeat_interval())
            .with_backoff(config.backoff())
            .with_deregister_timeout(config.deregister_timeout());
        Ok(Registrar {
            inner: KeepAlive::new(Arc::new(steps), keep_alive),
        })
    }

    /// Registers with a client of its own.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a configuration is unusable.
    pub fn from_config(config: Config, registrar: RegistrarConfig) -> Result<Registrar, Error> {
        Registrar::new(&Client::new(config)?, registrar)
    }

    /// Where the registration stands.
    pub fn status(&self) -> RegistrationStatus {
        self.inner.status()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<RegistrationStatus> {
        self.inner.watch_status()
    }
}

impl sdkit_core::Registrar for Registrar {
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.inner.register()
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.inner.deregister()
    }
}

/// `host:port` (IPv6 bracketed) split into the bare host and the port.
fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

/// The wire steps of a Eureka registration.
#[derive(Debug)]
pub(crate) struct Steps {
    client: Client,
    app_path: String,
    instance_path: String,
    body: Vec<u8>,
}

impl Steps {
    async fn do_register(&self) -> Result<(), Error> {
        let answer = self
            .client
            .send(Method::POST, &self.app_path, Some(self.body.clone()))
            .await?;
        match answer.status {
            StatusCode::NO_CONTENT | StatusCode::OK => {
                tracing::info!(instance = %self.instance_path, "eureka: registered");
                Ok(())
            }
            _ => Err(status_error(&Method::POST, &answer)),
        }
    }

    async fn do_renew(&self) -> Result<Renewal, Error> {
        let path = format!("{}?status=UP", self.instance_path);
        let answer = self.client.send(Method::PUT, &path, None).await?;
        match answer.status {
            StatusCode::OK => Ok(Renewal::Renewed),
            StatusCode::NOT_FOUND => {
                tracing::warn!(instance = %self.instance_path, "eureka: the server does not know the instance; registering again");
                Ok(Renewal::Lost)
            }
            _ => Err(status_error(&Method::PUT, &answer)),
        }
    }

    async fn do_deregister(&self) -> Result<(), Error> {
        let answer = self
            .client
            .send(Method::DELETE, &self.instance_path, None)
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => {
                tracing::info!(instance = %self.instance_path, "eureka: deregistered");
                Ok(())
            }
            _ => Err(status_error(&Method::DELETE, &answer)),
        }
    }
}

impl Registration for Steps {
    fn register(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { self.do_register().await.map_err(BoxError::from) })
    }

    fn renew(&self) -> BoxFuture<'_, Result<Renewal, BoxError>> {
        Box::pin(async move { self.do_renew().await.map_err(BoxError::from) })
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { self.do_deregister().await.map_err(BoxError::from) })
    }

    fn describe(&self) -> String {
        format!("eureka instance {}", self.instance_path)
    }
}
