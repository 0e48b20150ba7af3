//! From an instancer to a `tower::discover::Discover` stream.
//!
//! [`discover`] turns an [`Instancer`] and a [`Factory`] into a stream of
//! `Change::Insert(id, service)` / `Change::Remove(id)` keyed by instance identity, derived from
//! the instancer's complete snapshots. Feed it to `tower::balance::p2c::Balance` or to tonic's
//! `Channel::balance_channel` sender.
//!
//! * An instance whose address changes is re-inserted under the same key (tower replaces the
//!   service); a change of weight, tags or metadata alone is not a change for tower.
//! * A factory failure skips the instance (logged); it is tried again on the next snapshot.
//! * Source errors are logged and never yielded: tower's balancer treats a discovery error as
//!   fatal, and the last good set must stay usable. The stream's error type is therefore
//!   [`Infallible`].
//! * The stream ends when the instancer is stopped.
//!
//! ```
//! use sdkit_core::{BoxError, FixedInstancer, Instance, discover::discover};
//! use futures_util::StreamExt;
//! use tower::discover::Change;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let instancer = FixedInstancer::new(vec![Instance::new("a", "10.0.0.1:80")]);
//! let mut changes = discover(&instancer, |i: &Instance| Ok::<_, BoxError>(i.addr().to_owned()));
//! match changes.next().await {
//!     Some(Ok(Change::Insert(key, service))) => assert_eq!((key.as_str(), service.as_str()), ("a", "10.0.0.1:80")),
//!     _ => unreachable!(),
//! }
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tower::discover::Change;

use crate::cache::Subscription;
use crate::endpointer::Factory;
use crate::instance::Instance;
use crate::instancer::Instancer;

/// A `tower::discover::Discover` stream keyed by instance identity. See the
/// [module docs](self).
pub struct Discovered<S> {
    inner: Pin<Box<dyn Stream<Item = DiscoverItem<S>> + Send>>,
}

/// One item of a [`Discovered`] stream.
pub type DiscoverItem<S> = Result<Change<String, S>, Infallible>;

impl<S> fmt::Debug for Discovered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovered").finish_non_exhaustive()
    }
}

impl<S> Stream for Discovered<S> {
    type Item = Result<Change<String, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Subscribes to `instancer` and yields keyed changes with services made by `factory`.
pub fn discover<I, F, S>(instancer: &I, factory: F) -> Discovered<S>
where
    I: Instancer + ?Sized,
    F: Factory<S>,
    S: Send + 'static,
{
    let state = DiffState {
        subscription: instancer.subscribe(),
        factory,
        known: HashMap::new(),
        pending: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(change) = state.pending.pop_front() {
                return Some((Ok(change), state));
            }
            let snapshot = state.subscription.next().await?;
            if let Some(error) = snapshot.error() {
                tracing::warn!(%error, "discovery source failing; keeping the last good set");
            }
            state.diff(snapshot.instances());
        }
    });
    Discovered {
        inner: Box::pin(stream),
    }
}

struct DiffState<F, S> {
    subscription: Subscription,
    factory: F,
    /// Identity → address of what tower holds.
    known: HashMap<String, String>,
    pending: VecDeque<Change<String, S>>,
}

impl<F: Factory<S>, S> DiffState<F, S> {
    fn diff(&mut self, instances: &[Instance]) {
        let current: HashMap<&str, &Instance> = instances.iter().map(|i| (i.id(), i)).collect();
        let removed: Vec<String> = self
            .known
            .keys()
            .filter(|id| !current.contains_key(id.as_str()))
            .cloned()
            .collect();
        for id in removed {
            self.known.remove(&id);
            self.pending.push_back(Change::Remove(id));
        }
        for instance in instances {
            if self.known.get(instance.id()).map(String::as_str) == Some(instance.addr()) {
                continue;
            }
            match self.factory.make(instance) {
                Ok(service) => {
                    self.known
                        .insert(instance.id().to_owned(), instance.addr().to_owned());
                    self.pending
                        .push_back(Change::Insert(instance.id().to_owned(), service));
                }
                Err(error) => {
                    tracing::warn!(id = instance.id(), %error, "factory failed; instance skipped until the next snapshot");
                }
            }
        }
    }
}
