//! Endpointer: one callable endpoint per instance, kept in step with an instancer.
//!
//! An [`Endpointer`] subscribes to an [`Instancer`] and turns each instance into an endpoint with
//! a [`Factory`] (any `Fn(&Instance) -> Result<S, BoxError>`; `S` is usually a `tower::Service`).
//! On every new snapshot it
//!
//! * reuses the endpoint of each unchanged instance (same identity and address) and calls the
//!   factory only for new ones — a changed weight or tag updates the instance next to the
//!   existing endpoint without reconnecting;
//! * drops removed endpoints after publishing the new set, outside any lock (pickers never lock);
//! * skips an instance whose factory call fails (logged), and retries it with backoff and on the
//!   next update;
//! * publishes the result as an immutable [`Endpoints`] snapshot that balancers read without
//!   locks or allocation through an [`EndpointSet`].
//!
//! Source errors keep the last good endpoints (go-kit's default). With
//! [`EndpointerOptions::invalidate_on_error`], a timer empties the set once the source has been
//! failing for that long (go-kit only invalidates lazily, when somebody reads). Stopping or
//! dropping the endpointer drops every endpoint.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::{BoxError, Endpointer, FixedInstancer, Instance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let instancer = FixedInstancer::new(vec![
//!     Instance::from_addr("10.0.0.1:80"),
//!     Instance::from_addr("10.0.0.2:80"),
//! ]);
//! // The "endpoint" here is just the address; usually it is a client (a tower::Service).
//! let endpointer = Endpointer::new(&instancer, |i: &Instance| Ok::<_, BoxError>(i.addr().to_owned()));
//! let endpoints = endpointer.ready(Duration::from_secs(1)).await?;
//! assert_eq!(endpoints.len(), 2);
//! assert_eq!(endpoints.get(0).unwrap().service(), "10.0.0.1:80");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod merge;
mod reclaim;

use reclaim::{CountReady, Leftovers, Reclaimer};

use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::{BoxError, NoInstancesYet};
use crate::lb::EndpointState;
use crate::metrics::EndpointerMetrics;
use crate::{Backoff, Instance, Instancer, Snapshot, Subscription};

/// Makes an endpoint for an instance. Implemented by every
/// `Fn(&Instance) -> Result<S, E> + Send + Sync + 'static` with `E: Into<BoxError>`.
pub trait Factory<S>: Send + Sync + 'static {
    /// Creates the endpoint for `instance` (connects lazily, ideally: it is called on the
    /// endpointer's task).
    fn make(&self, instance: &Instance) -> Result<S, BoxError>;

    /// Creates the endpoint for `instance`, given the endpoint's shared [`EndpointState`]: a
    /// transport keeps the state to mark its connection ready or not
    /// ([`set_transport_ready`](EndpointState::set_transport_ready)) and to record what it sees.
    /// The endpointer calls this method; the default calls [`make`](Self::make).
    fn make_with_state(
        &self,
        instance: &Instance,
        state: &Arc<EndpointState>,
    ) -> Result<S, BoxError> {
        let _ = state;
        self.make(instance)
    }
}

impl<S, E, F> Factory<S> for F
where
    F: Fn(&Instance) -> Result<S, E> + Send + Sync + 'static,
    E: Into<BoxError>,
{
    fn make(&self, instance: &Instance) -> Result<S, BoxError> {
        self(instance).map_err(Into::into)
    }
}

/// Options of an [`Endpointer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointerOptions {
    /// Empty the set once the source has been failing this long. `None` (the default) keeps the
    /// last good endpoints for as long as the source fails.
    pub invalidate_on_error: Option<Duration>,
    /// Backoff for retrying instances whose factory call failed.
    pub factory_retry: Backoff,
}

impl Default for EndpointerOptions {
    fn default() -> Self {
        EndpointerOptions {
            invalidate_on_error: None,
            factory_retry: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        }
    }
}

impl EndpointerOptions {
    /// Sets [`invalidate_on_error`](Self::invalidate_on_error).
    pub fn invalidate_on_error(mut self, timeout: Duration) -> Self {
        self.invalidate_on_error = Some(timeout);
        self
    }

    /// Sets [`factory_retry`](Self::factory_retry).
    pub fn factory_retry(mut self, backoff: Backoff) -> Self {
        self.factory_retry = backoff;
        self
    }
}

/// Keeps one endpoint per instance of an instancer. See the [module docs](self).
pub struct Endpointer<S> {
    set: EndpointSet<S>,
    token: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl<S> fmt::Debug for Endpointer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpointer")
            .field("set", &self.set)
            .field("stopped", &self.token.is_cancelled())
            .finish()
    }
}

impl<S> Endpointer<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// Subscribes to `instancer` and keeps endpoints made by `factory`, with default options.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn new<I, F>(instancer: &I, factory: F) -> Self
    where
        I: Instancer + ?Sized,
        F: Factory<S>,
    {
        Self::with_options(instancer, factory, EndpointerOptions::default())
    }

    /// Like [`new`](Self::new), with options.
    pub fn with_options<I, F>(instancer: &I, factory: F, options: EndpointerOptions) -> Self
    where
        I: Instancer + ?Sized,
        F: Factory<S>,
    {
        Self::from_subscription(instancer.subscribe(), factory, options)
    }

    /// Builds an endpointer on an existing subscription.
    pub fn from_subscription<F>(
        subscription: Subscription,
        factory: F,
        options: EndpointerOptions,
    ) -> Self
    where
        F: Factory<S>,
    {
        let labels = subscription.labels().clone();
        let set = EndpointSet::labelled(labels.clone());
        let token = CancellationToken::new();
        let span = tracing::info_span!(
            "endpointer",
            backend = labels.backend(),
            service = labels.service()
        );
        let task = tokio::spawn(
            run(
                subscription,
                factory,
                options,
                set.clone(),
                token.clone(),
                EndpointerMetrics::new(&labels),
            )
            .instrument(span),
        );
        Endpointer {
            set,
            token,
            task: Mutex::new(Some(task)),
        }
    }
}

impl<S> Endpointer<S> {
    /// The lock-free view balancers hold.
    pub fn endpoint_set(&self) -> EndpointSet<S> {
        self.set.clone()
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Arc<Endpoints<S>> {
        self.set.snapshot()
    }

    /// Waits at most `timeout` for the first snapshot to be applied and returns the endpoints.
    ///
    /// # Errors
    ///
    /// [`NoInstancesYet`] when the instancer published nothing in time.
    pub async fn ready(&self, timeout: Duration) -> Result<Arc<Endpoints<S>>, NoInstancesYet> {
        match tokio::time::timeout(timeout, self.set.first_published()).await {
            Ok(()) => Ok(self.set.snapshot()),
            Err(_) => Err(NoInstancesYet { waited: timeout }),
        }
    }

    /// Stops following the instancer and drops every endpoint. Idempotent.
    pub fn stop(&self) {
        self.token.cancel();
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        self.set.close();
    }
}

impl<S> Drop for Endpointer<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The endpointer's task: applies snapshots, arms the invalidation and factory-retry timers.
async fn run<S, F>(
    mut subscription: Subscription,
    factory: F,
    options: EndpointerOptions,
    set: EndpointSet<S>,
    token: CancellationToken,
    metrics: EndpointerMetrics,
) where
    S: Clone + Send + Sync + 'static,
    F: Factory<S>,
{
    let far_future = || tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let mut last: Option<Arc<Snapshot>> = None;
    let mut invalidate_at: Option<tokio::time::Instant> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut retry_backoff = options.factory_retry.start();
    let mut source_open = true;
    // Set when the invalidation timer fired; cleared by the next good snapshot. While set, error
    // snapshots (which still carry the stale set) must not bring the stale endpoints back.
    let mut invalidated = false;
    let reclaimer = Reclaimer::new();
    loop {
        let invalidate_sleep = tokio::time::sleep_until(invalidate_at.unwrap_or_else(far_future));
        let retry_sleep = tokio::time::sleep_until(retry_at.unwrap_or_else(far_future));
        tokio::select! {
            _ = token.cancelled() => return,
            next = subscription.next(), if source_open => match next {
                Some(snapshot) => {
                    retry_backoff.reset();
                    if snapshot.error().is_none() {
                        invalidated = false;
                    }
                    if invalidated {
                        // Still failing after invalidation: keep the set empty, carry the news.
                        let mut leftovers = Leftovers::new();
                        leftovers.endpoints = set.publish(Endpoints::new(Vec::new(), snapshot.error().cloned()));
                        retry_at = None;
                        leftovers.snapshot = last.replace(snapshot);
                        reclaimer.release(leftovers);
                        continue;
                    }
                    invalidate_at = match (snapshot.error(), options.invalidate_on_error) {
                        (Some(_), Some(timeout)) => {
                            // Keep the first deadline while the source keeps failing.
                            Some(invalidate_at.unwrap_or_else(|| tokio::time::Instant::now() + timeout))
                        }
                        _ => None,
                    };
                    let mut leftovers = Leftovers::new();
                    let failed = apply(&set, &factory, &snapshot, &metrics, &mut leftovers);
                    retry_at = failed.then(|| tokio::time::Instant::now() + retry_backoff.next_delay());
                    leftovers.snapshot = last.replace(snapshot);
                    reclaimer.release(leftovers);
                }
                // The instancer stopped: keep the endpoints until we are stopped.
                None => source_open = false,
            },
            _ = invalidate_sleep, if invalidate_at.is_some() => {
                invalidate_at = None;
                invalidated = true;
                retry_at = None;
                let error = last.as_ref().and_then(|s| s.error().cloned());
                tracing::warn!(error = ?error.as_ref().map(ToString::to_string), "source failing for too long; invalidating endpoints");
                let mut leftovers = Leftovers::new();
                leftovers.endpoints = set.publish(Endpoints::new(Vec::new(), error));
                reclaimer.release(leftovers);
            }
            _ = retry_sleep, if retry_at.is_some() => {
                retry_at = None;
                if let Some(snapshot) = &last {
                    let mut leftovers = Leftovers::new();
                    let failed = apply(&set, &factory, snapshot, &metrics, &mut leftovers);
                    retry_at = failed.then(|| tokio::time::Instant::now() + retry_backoff.next_delay());
                    reclaimer.release(leftovers);
                }
            }
        }
    }
}

/// Merges `snapshot` into the published endpoints; returns `true` when a factory call failed.
fn apply<S, F>(
    set: &EndpointSet<S>,
    factory: &F,
    snapshot: &Snapshot,
    metrics: &EndpointerMetrics,
    leftovers: &mut Leftovers<S>,
) -> bool
where
    S: Clone + Send + Sync + 'static,
    F: Factory<S>,
{
    let first = set.version() == 0;
    let old = set.load();
    let merged = merge::merge(old.as_slice(), &snapshot.instances, factory, first);
    if merged.failed > 0 {
        metrics.factory_errors(merged.failed);
    }
    // The first snapshot is always published, even an empty one: it answers `ready`. Later, a
    // merge that carried every old endpoint over as it was (a retry that made nothing new) is
    // not published again.
    let unchanged = !first
        && merged.carried == old.len()
        && merged.items.len() == old.len()
        && old.error() == snapshot.error();
    drop(old);
    if !unchanged {
        leftovers.endpoints = set.publish(Endpoints::new(merged.items, snapshot.error().cloned()));
    }
    let current = set.snapshot();
    metrics.endpoints(current.len());
    leftovers.count = Some(CountReady {
        current,
        set: set.clone(),
        metrics: metrics.clone(),
    });
    merged.failed > 0
}
