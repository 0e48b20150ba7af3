//! What an instancer publishes: complete snapshots, never deltas.
//!
//! A backend sends [`Event`]s into an [`InstanceCache`](crate::InstanceCache); subscribers
//! receive [`Snapshot`]s. An error event marks the current set as stale but never empties it:
//! the last good instances stay in the snapshot next to the error.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::instance::Instance;

/// What a backend reports about one service.
#[derive(Clone, Debug)]
pub enum Event {
    /// The complete current set of instances (possibly empty: the service has none).
    Instances(Vec<Instance>),
    /// The source is failing; what subscribers have is stale.
    Error(SourceError),
}

/// The state subscribers see: the last good instance set and, while the source is failing, the
/// error.
///
/// Instances are sorted by identity and unique by [`Instance::id`].
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub(crate) instances: Arc<Vec<Instance>>,
    pub(crate) error: Option<SourceError>,
}

impl Snapshot {
    /// The instances, sorted by identity.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// A shared handle to the instances (no copy).
    pub fn shared_instances(&self) -> Arc<Vec<Instance>> {
        Arc::clone(&self.instances)
    }

    /// The error of the source, while it is failing.
    pub fn error(&self) -> Option<&SourceError> {
        self.error.as_ref()
    }

    /// `true` when there are no instances.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The number of instances.
    pub fn len(&self) -> usize {
        self.instances.len()
    }
}

/// A failure of a discovery source, cheap to clone so that it can be fanned out.
///
/// Its `Display` is the wrapped error's; `source()` is the wrapped error's source.
#[derive(Clone)]
pub struct SourceError {
    inner: Arc<dyn StdError + Send + Sync>,
}

impl SourceError {
    /// Wraps an error.
    pub fn new<E>(error: E) -> Self
    where
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        SourceError {
            inner: Arc::from(error.into()),
        }
    }

    /// The wrapped error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl fmt::Debug for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl StdError for SourceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}

/// Two source errors are equal when they read the same; the cache uses this to avoid
/// re-publishing an identical failure on every retry.
impl PartialEq for SourceError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.to_string() == other.to_string()
    }
}
