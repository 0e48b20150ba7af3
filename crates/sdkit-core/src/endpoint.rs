//! Endpoints as data: one [`Endpoint`] per instance, an immutable [`Endpoints`] snapshot.
//!
//! These are what balancers read; the [`Endpointer`](crate::Endpointer) (a task) produces them
//! and an [`EndpointSet`](crate::EndpointSet) publishes them.
//!
//! Each endpoint carries an [`EndpointState`] (in-flight count, latency, readiness) kept across
//! snapshot updates for as long as its instance stays in the set (same identity and address):
//! what the feedback path of the balancers reads and what call guards and transports write.
//!
//! ```
//! use sdkit_core::{EndpointSet, Instance};
//!
//! let set = EndpointSet::fixed([(Instance::new("b", "10.0.0.2:80"), 2), (Instance::new("a", "10.0.0.1:80"), 1)]);
//! let endpoints = set.snapshot();
//! // Sorted by identity.
//! assert_eq!(endpoints.get(0).unwrap().instance().id(), "a");
//! assert_eq!(*endpoints.get(1).unwrap().service(), 2);
//! assert!(endpoints.get(0).unwrap().state().is_ready());
//! ```

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::event::SourceError;
use crate::feedback::state::EndpointState;
use crate::instance::{Instance, SharedInstance};

/// A compact, stable key of an endpoint: a 64-bit hash of its instance identity.
///
/// [`Picked`](crate::lb::Picked) carries it so that a retry (or a hedge) can ask the next pick
/// to avoid the same endpoint ([`PickContext::with_avoid`](crate::lb::PickContext::with_avoid)).
/// Equal identities give equal keys in every process and version (the hash is 64-bit FNV-1a
/// followed by a SplitMix64 finaliser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey(pub u64);

impl EndpointKey {
    /// The key of the instance identity `id`.
    ///
    /// ```
    /// use sdkit_core::{EndpointKey, EndpointSet, Instance};
    /// let set = EndpointSet::fixed([(Instance::new("web-1", "10.0.0.1:80"), ())]);
    /// assert_eq!(set.snapshot().get(0).unwrap().key(), EndpointKey::of("web-1"));
    /// ```
    pub fn of(id: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.bytes() {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        EndpointKey(h ^ (h >> 31))
    }
}

/// One endpoint: its instance, the callable `service`, and its shared state.
///
/// An endpoint holds two references: one to what every snapshot that keeps it shares (the
/// service, the state and the key, allocated once when the instance joins), and one to the
/// instance list of the snapshot it was published with, whose entry it shows (an endpoint kept
/// across updates shows the newest weight, zone, tags and metadata). Cloning an endpoint, as an
/// update that keeps it does, takes those two references whatever the service costs to clone
/// (a gRPC channel or an HTTP client is several reference counts of its own). A clone held long
/// after the set changed keeps that instance list alive.
pub struct Endpoint<S> {
    shared: Arc<Shared<S>>,
    pub(crate) instance: SharedInstance,
}

/// What an [`Endpoint`] holds, behind its one reference count.
struct Shared<S> {
    key: EndpointKey,
    service: S,
    state: Arc<EndpointState>,
}

impl<S> Clone for Endpoint<S> {
    #[inline]
    fn clone(&self) -> Self {
        Endpoint {
            shared: Arc::clone(&self.shared),
            instance: self.instance.clone(),
        }
    }
}

impl<S> Endpoint<S> {
    /// An endpoint with fresh state (as a new instance gets).
    pub fn new(instance: Instance, service: S) -> Self {
        Self::with_state(
            SharedInstance::alone(instance),
            service,
            Arc::new(EndpointState::new()),
        )
    }

    pub(crate) fn with_state(
        instance: SharedInstance,
        service: S,
        state: Arc<EndpointState>,
    ) -> Self {
        Endpoint {
            shared: Arc::new(Shared {
                key: EndpointKey::of(instance.get().id()),
                service,
                state,
            }),
            instance,
        }
    }

    /// This endpoint's service and state next to `instance` (of the same identity): what an
    /// update that keeps the endpoint publishes.
    pub(crate) fn with_instance(&self, instance: SharedInstance) -> Self {
        Endpoint {
            shared: Arc::clone(&self.shared),
            instance,
        }
    }

    /// The instance this endpoint reaches.
    #[inline]
    pub fn instance(&self) -> &Instance {
        self.instance.get()
    }

    /// The callable endpoint.
    #[inline]
    pub fn service(&self) -> &S {
        &self.shared.service
    }

    /// The endpoint's shared state: kept across snapshot updates while the instance stays (same
    /// identity and address); a removed and re-added instance starts fresh.
    #[inline]
    pub fn state(&self) -> &Arc<EndpointState> {
        &self.shared.state
    }

    /// The key of the instance identity.
    #[inline]
    pub fn key(&self) -> EndpointKey {
        self.shared.key
    }
}

impl<S> fmt::Debug for Endpoint<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("instance", self.instance())
            .field("state", self.state())
            .finish_non_exhaustive()
    }
}

type Memo = Vec<(TypeId, Arc<dyn Any + Send + Sync>)>;

/// An immutable snapshot of the endpoint set, sorted by instance identity.
pub struct Endpoints<S> {
    items: Vec<Endpoint<S>>,
    error: Option<SourceError>,
    /// `⌈2⁶⁴ / len⌉`, so that pickers reduce a counter modulo `len` without a division.
    modulus_magic: u64,
    /// Per-snapshot tables balancers derive once (weights schedules, alias tables, rings).
    memo: Mutex<Memo>,
}

impl<S> Endpoints<S> {
    pub(crate) fn new(items: Vec<Endpoint<S>>, error: Option<SourceError>) -> Self {
        let len = u64::try_from(items.len()).unwrap_or(u64::MAX).max(1);
        Endpoints {
            items,
            error,
            modulus_magic: (u64::MAX / len).wrapping_add(1),
            memo: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn empty() -> Self {
        Self::new(Vec::new(), None)
    }

    /// `n % len` by Lemire's fastmod (exact for any 32-bit `n` and `len` < 2³²); `len` must be
    /// non-zero.
    #[inline]
    pub fn reduce(&self, n: u32) -> usize {
        let low = self.modulus_magic.wrapping_mul(u64::from(n));
        ((u128::from(low) * self.items.len() as u128) >> 64) as usize
    }

    /// The endpoints.
    #[inline]
    pub fn as_slice(&self) -> &[Endpoint<S>] {
        &self.items
    }

    /// One endpoint by position.
    pub fn get(&self, index: usize) -> Option<&Endpoint<S>> {
        self.items.get(index)
    }

    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// `true` when there is no endpoint.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The source's error while it is failing (the endpoints are the last good ones, or none
    /// once invalidated).
    pub fn error(&self) -> Option<&SourceError> {
        self.error.as_ref()
    }

    /// Iterates over the endpoints.
    pub fn iter(&self) -> std::slice::Iter<'_, Endpoint<S>> {
        self.items.iter()
    }

    /// A table derived from this snapshot, built by `build` on first use and shared by every
    /// later caller (one per type `T`): what weighted and hashing balancers precompute. Callers
    /// cache the returned `Arc` per snapshot; the lookup itself takes a short lock.
    pub fn derived<T, F>(&self, build: F) -> Arc<T>
    where
        T: Any + Send + Sync,
        F: FnOnce(&Self) -> T,
    {
        let id = TypeId::of::<T>();
        {
            let memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = memo.iter().find(|(t, _)| *t == id)
                && let Ok(table) = Arc::clone(&found.1).downcast::<T>()
            {
                return table;
            }
        }
        // Built outside the lock: two first callers may both build; the first stored wins.
        let built = Arc::new(build(self));
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = memo.iter().find(|(t, _)| *t == id)
            && let Ok(table) = Arc::clone(&found.1).downcast::<T>()
        {
            return table;
        }
        memo.push((id, Arc::clone(&built) as Arc<dyn Any + Send + Sync>));
        built
    }
}

impl<S> fmt::Debug for Endpoints<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoints")
            .field("items", &self.items)
            .field("error", &self.error)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_is_exact_modulo() {
        for len in [1usize, 2, 3, 7, 100, 10_000, 65_537] {
            let items: Vec<Endpoint<()>> = (0..len)
                .map(|i| Endpoint::new(Instance::from_addr(i.to_string()), ()))
                .collect();
            let e = Endpoints::new(items, None);
            for n in (0..5_000u32).chain([u32::MAX - 3, u32::MAX - 1, u32::MAX]) {
                assert_eq!(e.reduce(n), n as usize % len, "n={n} len={len}");
            }
        }
    }

    #[test]
    fn derived_tables_are_built_once_per_snapshot() {
        let e = Endpoints::new(vec![Endpoint::new(Instance::from_addr("a:1"), ())], None);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let build = |e: &Endpoints<()>| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            e.len() as u64
        };
        let first = e.derived(build);
        let second = e.derived(build);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*first, 1);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        // Another type gets its own table.
        assert_eq!(*e.derived(|_| "x"), "x");
    }
}
