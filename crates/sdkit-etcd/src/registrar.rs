//! The etcd registrar: one instance under `<prefix>/<instance id>`, attached to a lease that is
//! kept alive, on the shared keep-alive driver of `sdkit-core`.
//!
//! * **register**: grant a lease of the configured TTL (whole seconds: etcd has no finer unit),
//!   then put the key with the [JSON value](crate::value) attached to it;
//! * **renew** (every TTL/3): one keep-alive on the lease's stream. A TTL of 0 in the answer means
//!   the lease is gone (it expired during an outage, or was revoked): the driver grants a new
//!   lease and puts the key again. A failing call or an ended stream is retried with backoff
//!   (capped at TTL/3, so a reachable etcd is retried before the lease can lapse) on a fresh
//!   stream; the first renewal that succeeds after a failure also checks that the key is still
//!   attached to the lease, and registers again if not. This goes on forever: the key comes back
//!   after any outage (go-kit #1043 and kratos #3883 lose it);
//! * **deregister** deletes the key and revokes the lease, within `deregister_timeout`; dropping
//!   the registrar deregisters in the background.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use sdkit_core::registrar::{
    BoxFuture, KeepAlive, KeepAliveConfig, Registration, RegistrationStatus, Renewal,
};
use sdkit_core::{Backoff, BoxError, RegistrarError};

use crate::client::Client;
use crate::config::{Config, RegistrarConfig};
use crate::error::Error;
use crate::value;

/// Registers one instance in etcd and keeps it alive. See the [module docs](self).
///
/// ```no_run
/// use sdkit_core::{Instance, Registrar as _};
/// use sdkit_etcd::{Config, Registrar, RegistrarConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::new(["127.0.0.1:2379"]);
/// let registration = RegistrarConfig::new("/services/web", Instance::new("web-1", "10.0.0.1:8080"));
/// let registrar = Registrar::from_config(config, registration)?;
/// registrar.register().await?; // /services/web/web-1 = {"addr":"10.0.0.1:8080","weight":1}
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
    /// Registers `config.instance` under `config.prefix` through a shared `client`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the prefix is the root or the instance id is empty or contains
    /// `/` (no network I/O happens here).
    pub fn new(client: &Client, config: RegistrarConfig) -> Result<Self, Error> {
        config.validate()?;
        let ttl_secs = config.ttl_secs();
        let renew_interval = Duration::from_secs_f64(ttl_secs as f64 / 3.0);
        let backoff = Backoff::new(
            config.backoff.initial().min(renew_interval),
            config.backoff.max().min(renew_interval),
        );
        let keep_alive = KeepAliveConfig::new(renew_interval)
            .with_backoff(backoff)
            .with_deregister_timeout(config.deregister_timeout);
        let steps = Steps {
            value: value::encode(&config.instance),
            key: config.key(),
            ttl_secs,
            client: client.clone(),
            lease: Mutex::new(None),
            keeper: tokio::sync::Mutex::new(None),
            verify: Mutex::new(false),
        };
        Ok(Registrar {
            inner: KeepAlive::new(Arc::new(steps), keep_alive),
        })
    }

    /// Registers `registration` with a client of its own, built from `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a configuration is unusable (no network I/O happens here).
    pub fn from_config(config: Config, registration: RegistrarConfig) -> Result<Self, Error> {
        Registrar::new(&Client::new(config)?, registration)
    }

    /// The key this registrar writes.
    pub fn key(&self) -> &str {
        &self.inner.steps().key
    }

    /// The lease currently holding the key, once registered.
    pub fn lease_id(&self) -> Option<i64> {
        self.inner.steps().lease()
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

/// The three wire steps of an etcd registration.
pub(crate) struct Steps {
    client: Client,
    key: String,
    value: String,
    ttl_secs: i64,
    /// The lease the key is attached to, once registered.
    lease: Mutex<Option<i64>>,
    /// The open keep-alive stream of that lease.
    keeper: tokio::sync::Mutex<Option<(LeaseKeeper, LeaseKeepAliveStream)>>,
    /// Set after a failed renewal: the next good one checks the key too.
    verify: Mutex<bool>,
}

impl std::fmt::Debug for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steps")
            .field("key", &self.key)
            .field("ttl_secs", &self.ttl_secs)
            .field("lease", &self.lease())
            .finish_non_exhaustive()
    }
}

impl Steps {
    fn lease(&self) -> Option<i64> {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_lease(&self, lease: Option<i64>) {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = lease;
    }

    fn set_verify(&self, verify: bool) -> bool {
        std::mem::replace(
            &mut *self.verify.lock().unwrap_or_else(PoisonError::into_inner),
            verify,
        )
    }

    async fn do_register(&self) -> Result<(), Error> {
        *self.keeper.lock().await = None;
        let (lease, granted) = self.client.grant(self.ttl_secs).await?;
        self.client
            .put_with_lease(&self.key, &self.value, lease)
            .await?;
        self.set_lease(Some(lease));
        self.set_verify(false);
        tracing::info!(key = %self.key, lease = format_args!("{lease:#x}"), ttl = granted, "etcd: registered");
        Ok(())
    }

    async fn do_renew(&self) -> Result<Renewal, Error> {
        let Some(lease) = self.lease() else {
            return Ok(Renewal::Lost);
        };
        let result = self.keep_alive_once(lease).await;
        match result {
            Ok(ttl) if ttl <= 0 => {
                tracing::warn!(key = %self.key, lease = format_args!("{lease:#x}"), "etcd: lease expired; registering again");
                self.set_lease(None);
                Ok(Renewal::Lost)
            }
            Ok(_) => {
                if self.set_verify(false) {
                    // After a failure: the lease lives, but is the key still attached to it?
                    match self.client.key_lease(&self.key).await {
                        Ok(Some(attached)) if attached == lease => {}
                        Ok(_) => {
                            tracing::warn!(key = %self.key, "etcd: key lost while the lease lived; registering again");
                            return Ok(Renewal::Lost);
                        }
                        Err(e) => {
                            self.set_verify(true);
                            return Err(e);
                        }
                    }
                }
                Ok(Renewal::Renewed)
            }
            Err(e) => {
                self.set_verify(true);
                Err(e)
            }
        }
    }

    /// One keep-alive round trip on the lease's stream (opened if needed); returns the TTL etcd
    /// reports. Any failure drops the stream so the next attempt opens a fresh one.
    async fn keep_alive_once(&self, lease: i64) -> Result<i64, Error> {
        let mut slot = self.keeper.lock().await;
        // A hung keep-alive must not outlive a renewal interval, or the lease could lapse
        // before the retry.
        let timeout = self
            .client
            .config()
            .request_timeout
            .min(Duration::from_secs_f64(self.ttl_secs as f64 / 3.0));
        let result = tokio::time::timeout(timeout, async {
            let Some((keeper, stream)) = slot.as_mut() else {
                // Opening the stream is itself a keep-alive round trip.
                return match self.client.keep_alive(lease).await? {
                    Some(pair) => {
                        *slot = Some(pair);
                        Ok(self.ttl_secs)
                    }
                    None => Ok(0),
                };
            };
            keeper
                .keep_alive()
                .await
                .map_err(|e| Error::from_client("lease keep-alive", e, None))?;
            match stream.message().await {
                Ok(Some(response)) => Ok(response.ttl()),
                Ok(None) => Err(Error::KeepAliveEnded { lease }),
                Err(e) => Err(Error::from_client("lease keep-alive", e, None)),
            }
        })
        .await
        .unwrap_or(Err(Error::Timeout {
            op: "lease keep-alive",
            timeout,
        }));
        if result.is_err() {
            *slot = None;
        }
        result
    }

    async fn do_deregister(&self) -> Result<(), Error> {
        *self.keeper.lock().await = None;
        self.client.delete(&self.key).await?;
        if let Some(lease) = self.lease() {
            self.client.revoke(lease).await?;
            self.set_lease(None);
        }
        tracing::info!(key = %self.key, "etcd: deregistered");
        Ok(())
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
        format!("etcd key {}", self.key)
    }
}
