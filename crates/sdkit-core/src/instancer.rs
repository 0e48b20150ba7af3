//! Instancers: the watchers that publish a service's instance set.
//!
//! An [`Instancer`] is subscribed to; it yields the current
//! [`Snapshot`](crate::event::Snapshot) at once and then each new distinct one. Backends implement it with a [`TaskInstancer`]: a background task that owns the
//! registry connection and publishes into an [`InstanceCache`], and that is stopped (idempotently,
//! at once, with nothing published afterwards) by [`Instancer::stop`] or by dropping it.
//! [`FixedInstancer`] serves a fixed set.
//!
//! ```
//! use sdkit_core::{FixedInstancer, Instance, Instancer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let instancer = FixedInstancer::new(vec![Instance::from_addr("127.0.0.1:8080")]);
//! let mut sub = instancer.subscribe();
//! assert_eq!(sub.next().await.unwrap().len(), 1);
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cache::{InstanceCache, Subscription};
use crate::instance::Instance;
use crate::metrics::Labels;
use crate::task::OwnedTask;

/// A source of instance sets for one service.
pub trait Instancer: Send + Sync {
    /// Subscribes: the current state at once (if any), then each new distinct state; the
    /// subscription ends after [`stop`](Self::stop).
    fn subscribe(&self) -> Subscription;

    /// Stops watching: cancels in-flight I/O at once; once it returns nothing more is published.
    /// Idempotent.
    fn stop(&self);
}

impl<T: Instancer + ?Sized> Instancer for Arc<T> {
    fn subscribe(&self) -> Subscription {
        (**self).subscribe()
    }
    fn stop(&self) {
        (**self).stop()
    }
}

impl<T: Instancer + ?Sized> Instancer for Box<T> {
    fn subscribe(&self) -> Subscription {
        (**self).subscribe()
    }
    fn stop(&self) {
        (**self).stop()
    }
}

/// An instancer with a fixed set of instances (`static://` targets, tests).
#[derive(Debug, Clone)]
pub struct FixedInstancer {
    cache: InstanceCache,
}

impl FixedInstancer {
    /// Publishes `instances` once.
    pub fn new(instances: Vec<Instance>) -> Self {
        Self::labelled(Labels::new("", "static"), instances)
    }

    /// Publishes `instances` once, with `labels` on its [metrics](crate::metrics).
    pub fn labelled(labels: Labels, instances: Vec<Instance>) -> Self {
        let cache = InstanceCache::labelled(labels);
        cache.update(instances);
        FixedInstancer { cache }
    }
}

impl Instancer for FixedInstancer {
    fn subscribe(&self) -> Subscription {
        self.cache.subscribe()
    }
    fn stop(&self) {
        self.cache.close();
    }
}

/// An instancer driven by one background task: the building block of every backend.
///
/// The task gets the [`InstanceCache`] to publish into and a [`CancellationToken`] that fires on
/// stop; it should `select!` on [`CancellationToken::cancelled`] around every await (or use
/// [`sleep_or_cancel`]). Stop cancels the token, aborts the task and closes the cache, so nothing
/// is published after it returns even if the task has not yet noticed. Dropping stops it.
///
/// ```
/// use sdkit_core::{Instance, Instancer, TaskInstancer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let instancer = TaskInstancer::spawn("example", |cache, token| async move {
///     cache.update(vec![Instance::from_addr("127.0.0.1:1")]);
///     token.cancelled().await;
/// });
/// let mut sub = instancer.subscribe();
/// assert_eq!(sub.next().await.unwrap().len(), 1);
/// instancer.stop();
/// instancer.stop(); // idempotent
/// assert!(sub.next().await.is_none());
/// # }
/// ```
#[derive(Debug)]
pub struct TaskInstancer {
    cache: InstanceCache,
    task: OwnedTask,
}

impl TaskInstancer {
    /// Spawns `run(cache, token)` on the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn spawn<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: FnOnce(InstanceCache, CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::spawn_service(name, "", run)
    }

    /// Like [`spawn`](Self::spawn), for `service`: the watch task runs in a `watch` span with
    /// the backend and service, and the [metrics](crate::metrics) carry both as labels.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn spawn_service<F, Fut>(backend: &'static str, service: &str, run: F) -> Self
    where
        F: FnOnce(InstanceCache, CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cache = InstanceCache::labelled(Labels::new(service, backend));
        let published = cache.clone();
        let span = tracing::info_span!("watch", backend, service);
        let task = OwnedTask::spawn(backend, move |token| run(published, token).instrument(span));
        TaskInstancer { cache, task }
    }

    /// The cache the task publishes into.
    pub fn cache(&self) -> &InstanceCache {
        &self.cache
    }

    /// `true` once stopped.
    pub fn is_stopped(&self) -> bool {
        self.task.is_stopped()
    }
}

impl Instancer for TaskInstancer {
    fn subscribe(&self) -> Subscription {
        self.cache.subscribe()
    }

    fn stop(&self) {
        self.task.stop();
        self.cache.close();
    }
}

impl Drop for TaskInstancer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Re-exported from [`task`](crate::task), where it lives.
pub use crate::task::sleep_or_cancel;

/// A cache is itself an [`Instancer`] fed by hand: publish with
/// [`update`](InstanceCache::update) and [`error`](InstanceCache::error); `stop` closes it.
impl Instancer for InstanceCache {
    fn subscribe(&self) -> Subscription {
        InstanceCache::subscribe(self)
    }

    fn stop(&self) {
        self.close();
    }
}
