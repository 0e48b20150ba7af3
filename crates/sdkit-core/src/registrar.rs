//! Registrars: the service side of discovery.
//!
//! A [`Registrar`] registers one instance, keeps it alive and deregisters it. Every backend
//! implements the same loop through [`KeepAlive`], the shared driver: the backend supplies the
//! three wire steps ([`Registration`]) and the driver
//!
//! * registers, retrying forever with capped, jittered [`Backoff`];
//! * renews on an interval; when the backend reports the registration [`Lost`](Renewal::Lost)
//!   (a -404, a TTL of 0, an unknown check) it registers again; a failed renew is retried with
//!   backoff — never more than half a renew interval apart, so a TTL-based registration is not
//!   outlived while retrying — forever (go-kit #1043 and kratos #3883 give up here);
//! * on [`deregister`](Registrar::deregister) stops renewing first, then deregisters within a
//!   bounded time; deregister is idempotent, and dropping the handle deregisters in the
//!   background.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use sdkit_core::registrar::{BoxFuture, KeepAlive, KeepAliveConfig, Registration, Renewal};
//! use sdkit_core::{BoxError, Registrar};
//!
//! /// A registry in memory: counts calls.
//! #[derive(Default)]
//! struct Counter { registered: AtomicU32 }
//!
//! impl Registration for Counter {
//!     fn register(&self) -> BoxFuture<'_, Result<(), BoxError>> {
//!         Box::pin(async { self.registered.fetch_add(1, Ordering::SeqCst); Ok(()) })
//!     }
//!     fn renew(&self) -> BoxFuture<'_, Result<Renewal, BoxError>> {
//!         Box::pin(async { Ok(Renewal::Renewed) })
//!     }
//!     fn deregister(&self) -> BoxFuture<'_, Result<(), BoxError>> {
//!         Box::pin(async { self.registered.fetch_sub(1, Ordering::SeqCst); Ok(()) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let steps = Arc::new(Counter::default());
//! let registrar = KeepAlive::new(steps.clone(), KeepAliveConfig::new(Duration::from_secs(30)));
//! registrar.register().await?;
//! assert_eq!(steps.registered.load(Ordering::SeqCst), 1);
//! registrar.deregister().await?;
//! registrar.deregister().await?; // idempotent
//! assert_eq!(steps.registered.load(Ordering::SeqCst), 0);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::error::{BoxError, RegistrarError};
use crate::metrics::{Labels, RegistrarMetrics};
use crate::task::sleep_or_cancel;

/// A boxed, sendable future (what object-safe async traits return).
pub use crate::task::BoxFuture;

/// The service side of discovery: one instance, registered and kept alive until deregistered.
///
/// Object safe, so a `Box<dyn Registrar>` works for every backend.
pub trait Registrar: Send + Sync {
    /// Starts registering and keeping the instance alive, and resolves once the registry has
    /// accepted it the first time. Registration goes on in the background (retrying forever)
    /// even if this future is dropped: wrap it in a timeout to bound the wait.
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>>;

    /// Stops keeping the instance alive and removes it from the registry within a bounded time.
    /// Idempotent.
    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>>;
}

impl<T: Registrar + ?Sized> Registrar for Arc<T> {
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        (**self).register()
    }
    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        (**self).deregister()
    }
}

impl<T: Registrar + ?Sized> Registrar for Box<T> {
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        (**self).register()
    }
    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        (**self).deregister()
    }
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The registration is alive.
    Renewed,
    /// The registry no longer knows the registration (expired lease, -404, unknown check):
    /// register again.
    Lost,
}

/// The wire steps of one backend's registration; [`KeepAlive`] drives them.
pub trait Registration: Send + Sync + 'static {
    /// Registers (or re-registers) the instance.
    fn register(&self) -> BoxFuture<'_, Result<(), BoxError>>;
    /// One keep-alive step. An `Err` is retried with backoff; [`Renewal::Lost`] re-registers.
    fn renew(&self) -> BoxFuture<'_, Result<Renewal, BoxError>>;
    /// Removes the instance from the registry. "Not found" should count as done.
    fn deregister(&self) -> BoxFuture<'_, Result<(), BoxError>>;

    /// What is registered, for logs (a key, a service ID, an appid and hostname). Every log line
    /// of the keep-alive loop carries it in a `registrar` span. Must not contain secrets.
    fn describe(&self) -> String {
        String::from("registration")
    }

    /// The service and backend for the registrar's [metrics](crate::metrics) and span.
    fn labels(&self) -> Labels {
        Labels::default()
    }
}

/// Timing of a [`KeepAlive`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeepAliveConfig {
    /// Time between successful renewals.
    pub renew_interval: Duration,
    /// Backoff between failed attempts (register or renew).
    pub backoff: Backoff,
    /// Upper bound on deregistration (stopping the loop plus the registry call).
    pub deregister_timeout: Duration,
}

impl KeepAliveConfig {
    /// Renews every `renew_interval`; backs off from 100 ms to 10 s; deregisters within 5 s.
    pub fn new(renew_interval: Duration) -> Self {
        KeepAliveConfig {
            renew_interval,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            deregister_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the deregistration bound.
    pub fn with_deregister_timeout(mut self, timeout: Duration) -> Self {
        self.deregister_timeout = timeout;
        self
    }
}

/// Where a [`KeepAlive`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// `register` was not called yet.
    Idle,
    /// Registering (first time, or again after the registration was lost).
    Registering,
    /// The registry holds the registration.
    Registered,
    /// Deregistered (or dropped); final.
    Deregistered,
}

enum Phase {
    Idle,
    Running {
        token: CancellationToken,
        task: JoinHandle<()>,
    },
    Done,
}

/// The shared keep-alive driver: a [`Registrar`] for any backend's [`Registration`] steps.
/// See the [module docs](self).
pub struct KeepAlive<R: Registration> {
    steps: Arc<R>,
    config: KeepAliveConfig,
    phase: Mutex<Phase>,
    status: watch::Sender<RegistrationStatus>,
}

impl<R: Registration> fmt::Debug for KeepAlive<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAlive")
            .field("config", &self.config)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl<R: Registration> KeepAlive<R> {
    /// A driver for `steps`; nothing happens until [`Registrar::register`].
    pub fn new(steps: Arc<R>, config: KeepAliveConfig) -> Self {
        KeepAlive {
            steps,
            config,
            phase: Mutex::new(Phase::Idle),
            status: watch::channel(RegistrationStatus::Idle).0,
        }
    }

    /// The backend steps.
    pub fn steps(&self) -> &Arc<R> {
        &self.steps
    }

    /// The current status.
    pub fn status(&self) -> RegistrationStatus {
        *self.status.borrow()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> watch::Receiver<RegistrationStatus> {
        self.status.subscribe()
    }

    /// Starts the loop if it is idle; `Err` once deregistered.
    fn start(&self) -> Result<(), RegistrarError> {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match *phase {
            Phase::Running { .. } => Ok(()),
            Phase::Done => Err(RegistrarError::Deregistered),
            Phase::Idle => {
                let token = CancellationToken::new();
                let labels = self.steps.labels();
                let span = tracing::info_span!(
                    "registrar",
                    backend = labels.backend(),
                    service = labels.service(),
                    registration = %self.steps.describe()
                );
                let task = tokio::spawn(
                    run(
                        Arc::clone(&self.steps),
                        self.config,
                        self.status.clone(),
                        token.clone(),
                        RegistrarMetrics::new(&labels),
                    )
                    .instrument(span),
                );
                *phase = Phase::Running { token, task };
                Ok(())
            }
        }
    }

    /// Takes the loop out of the running state; returns it if it ran.
    fn finish(&self) -> Option<(CancellationToken, JoinHandle<()>)> {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *phase, Phase::Done) {
            Phase::Running { token, task } => Some((token, task)),
            Phase::Idle | Phase::Done => None,
        }
    }
}

impl<R: Registration> Registrar for KeepAlive<R> {
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        Box::pin(async move {
            self.start()?;
            let mut status = self.status.subscribe();
            let reached = status
                .wait_for(|s| {
                    matches!(
                        s,
                        RegistrationStatus::Registered | RegistrationStatus::Deregistered
                    )
                })
                .await
                .map(|s| *s);
            match reached {
                Ok(RegistrationStatus::Registered) => Ok(()),
                _ => Err(RegistrarError::Deregistered),
            }
        })
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        Box::pin(async move {
            let Some((token, task)) = self.finish() else {
                self.status.send_replace(RegistrationStatus::Deregistered);
                return Ok(());
            };
            // Stop renewing first, so no renew races the removal.
            token.cancel();
            let bound = self.config.deregister_timeout;
            let result = tokio::time::timeout(bound, async {
                let _ = task.await;
                self.steps.deregister().await
            })
            .await;
            self.status.send_replace(RegistrationStatus::Deregistered);
            match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(RegistrarError::Backend(e)),
                Err(_) => Err(RegistrarError::Timeout(bound)),
            }
        })
    }
}

impl<R: Registration> Drop for KeepAlive<R> {
    fn drop(&mut self) {
        let Some((token, task)) = self.finish() else {
            return;
        };
        token.cancel();
        task.abort();
        self.status.send_replace(RegistrationStatus::Deregistered);
        // Deregister in the background, bounded, when a runtime is still there to run it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let steps = Arc::clone(&self.steps);
            let bound = self.config.deregister_timeout;
            let span = tracing::info_span!("registrar", registration = %steps.describe());
            runtime.spawn(
                async move {
                    match tokio::time::timeout(bound, steps.deregister()).await {
                        Ok(Ok(())) => tracing::debug!("deregistered on drop"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "deregistration on drop failed"),
                        Err(_) => tracing::warn!(?bound, "deregistration on drop timed out"),
                    }
                }
                .instrument(span),
            );
        }
    }
}

/// The keep-alive loop. Every await is cancellable through `token`.
async fn run<R: Registration>(
    steps: Arc<R>,
    config: KeepAliveConfig,
    status: watch::Sender<RegistrationStatus>,
    token: CancellationToken,
    metrics: RegistrarMetrics,
) {
    // Registered until the loop ends (stop, deregistration): the gauge drops with it.
    struct Unregistered<'a>(&'a RegistrarMetrics);
    impl Drop for Unregistered<'_> {
        fn drop(&mut self) {
            self.0.registered(false);
        }
    }
    let _unregistered = Unregistered(&metrics);
    let mut backoff = config.backoff.start();
    'register: loop {
        status.send_replace(RegistrationStatus::Registering);
        loop {
            let result = tokio::select! {
                _ = token.cancelled() => return,
                r = steps.register() => r,
            };
            match result {
                Ok(()) => break,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, failures = backoff.failures(), ?delay, "register failed; retrying");
                    if !sleep_or_cancel(&token, delay).await {
                        return;
                    }
                }
            }
        }
        backoff.reset();
        metrics.registered(true);
        status.send_replace(RegistrationStatus::Registered);
        tracing::debug!("registered");
        let mut wait = config.renew_interval;
        loop {
            if !sleep_or_cancel(&token, wait).await {
                return;
            }
            let result = tokio::select! {
                _ = token.cancelled() => return,
                r = steps.renew() => r,
            };
            match result {
                Ok(Renewal::Renewed) => {
                    if backoff.failures() > 0 {
                        tracing::info!("renew succeeded again");
                    }
                    backoff.reset();
                    wait = config.renew_interval;
                }
                Ok(Renewal::Lost) => {
                    tracing::warn!("registration lost; registering again");
                    metrics.registered(false);
                    metrics.reregistered();
                    continue 'register;
                }
                Err(error) => {
                    // A failed renew is retried sooner than the regular cadence, never later:
                    // half the renew interval at most, so a TTL is not outlived while retrying.
                    wait = backoff.next_delay().min(config.renew_interval / 2);
                    metrics.renew_failed();
                    tracing::warn!(%error, failures = backoff.failures(), delay = ?wait, "renew failed; retrying");
                }
            }
        }
    }
}
