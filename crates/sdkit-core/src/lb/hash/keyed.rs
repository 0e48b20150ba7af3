//! What the consistent-hash balancers share: the per-snapshot table cache, the key (the pick
//! context's hash, or a random one), the ready/avoid fallback to alternative keys, and the pick
//! itself. [`Maglev`](super::Maglev) and [`RingHash`](super::RingHash) differ only in their
//! [`Table`].

use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::lb::reader::Reader;
use crate::lb::snapshot_cache::SnapshotCache;
use crate::lb::stable_hash::{GOLDEN_GAMMA, mix};
use crate::lb::{CallGuard, PickContext, Picked, ready};

/// A lookup structure built once per snapshot: a (mixed) key hash → an endpoint index.
pub(super) trait Table: Send + Sync + 'static {
    /// The endpoint index owning `hash` (`None` when the table is empty).
    fn lookup(&self, hash: u64) -> Option<u32>;
}

/// One endpoint that can own keys: its index in the snapshot, its id and its weight (> 0).
#[derive(Debug, Clone, Copy)]
pub(super) struct Member<'a> {
    pub(super) index: u32,
    pub(super) id: &'a str,
    pub(super) weight: u32,
}

/// The endpoints of non-zero weight, sorted by id (tables then depend on the set of ids, not on
/// the order the snapshot lists them in).
pub(super) fn members<S>(endpoints: &Endpoints<S>) -> Vec<Member<'_>> {
    let mut members: Vec<Member<'_>> = endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| e.instance().weight() > 0)
        .map(|(i, e)| Member {
            index: i as u32,
            id: e.instance().id(),
            weight: e.instance().weight(),
        })
        .collect();
    members.sort_unstable_by(|a, b| a.id.cmp(b.id));
    members
}

/// The shared core of a consistent-hash balancer over tables of type `T`.
#[derive(Debug)]
pub(super) struct Keyed<S: Send + Sync, T> {
    reader: Reader<S>,
    cache: SnapshotCache<S, T>,
}

impl<S: Send + Sync + 'static, T: Table> Keyed<S, T> {
    pub(super) fn new(set: EndpointSet<S>) -> Self {
        Keyed {
            reader: Reader::new(set, rand::random()),
            cache: SnapshotCache::default(),
        }
    }

    pub(super) fn set(&self) -> &EndpointSet<S> {
        self.reader.set()
    }

    /// Runs `f` with the current snapshot's table (built by `build` from the snapshot and the
    /// previous table, once per snapshot) and the snapshot.
    #[inline]
    pub(super) fn with_table<R>(
        &self,
        build: impl FnOnce(&Endpoints<S>, Option<&T>) -> T,
        f: impl FnOnce(&T, &Endpoints<S>) -> R,
    ) -> R {
        self.reader.with(|endpoints, _, local| {
            self.cache
                .with(self.reader.set(), endpoints, local, build, |table, _| {
                    f(table, endpoints)
                })
        })
    }

    /// The index of the endpoint for `cx`'s hash (a random one when it has none); `then` gets
    /// the snapshot and the index.
    #[inline]
    fn choose<R>(
        &self,
        cx: &PickContext<'_>,
        build: impl FnOnce(&Endpoints<S>, Option<&T>) -> T,
        then: impl FnOnce(&Endpoints<S>, usize) -> R,
    ) -> Result<R, NoEndpoints> {
        self.reader.with(|endpoints, _, local| {
            self.cache.with(
                self.reader.set(),
                endpoints,
                local,
                build,
                |table, local| {
                    let hash = mix(cx.hash().unwrap_or_else(|| local.next_u64()));
                    let first = table.lookup(hash).ok_or(NoEndpoints)? as usize;
                    let i = ready::filter(endpoints, local, cx, true, first, |_, attempt| {
                        // Alternatives are a function of the key alone: a key whose endpoint
                        // is down goes to the same alternative from every client, and the
                        // other keys stay where they are.
                        let alt = mix(hash ^ u64::from(attempt).wrapping_mul(GOLDEN_GAMMA));
                        table.lookup(alt).map_or(first, |i| i as usize)
                    });
                    Ok(then(endpoints, i))
                },
            )
        })
    }
}

impl<S: Clone + Send + Sync + 'static, T: Table> Keyed<S, T> {
    /// [`Balancer::pick`](crate::lb::Balancer::pick) with tables built by `build`.
    #[inline]
    pub(super) fn pick(
        &self,
        build: impl FnOnce(&Endpoints<S>, Option<&T>) -> T,
    ) -> Result<S, NoEndpoints> {
        self.choose(&PickContext::new(), build, |e, i| {
            e.as_slice()[i].service().clone()
        })
    }

    /// [`Balancer::pick_with`](crate::lb::Balancer::pick_with): no feedback, a detached guard.
    #[inline]
    pub(super) fn pick_with(
        &self,
        cx: &PickContext<'_>,
        build: impl FnOnce(&Endpoints<S>, Option<&T>) -> T,
    ) -> Result<Picked<S>, NoEndpoints> {
        self.choose(cx, build, |e, i| {
            let e = &e.as_slice()[i];
            Picked {
                service: e.service().clone(),
                guard: CallGuard::detached(),
                key: e.key(),
            }
        })
    }
}

/// `Balancer` for a consistent-hash balancer: a type with a `keyed: Keyed<S, _>` field and a
/// `build(&self, &Endpoints<S>, Option<&Table>) -> Table` method.
macro_rules! keyed_balancer {
    ($balancer:ident) => {
        impl<S: Clone + Send + Sync + 'static> $crate::lb::Balancer<S> for $balancer<S> {
            #[inline]
            fn pick(&self) -> Result<S, $crate::error::NoEndpoints> {
                self.keyed.pick(|e, previous| self.build(e, previous))
            }

            #[inline]
            fn pick_with(
                &self,
                cx: &$crate::lb::PickContext<'_>,
            ) -> Result<$crate::lb::Picked<S>, $crate::error::NoEndpoints> {
                self.keyed
                    .pick_with(cx, |e, previous| self.build(e, previous))
            }

            fn endpoints_available(&self) -> $crate::registrar::BoxFuture<'static, ()> {
                $crate::lb::non_empty(self.keyed.set())
            }
        }
    };
}
pub(super) use keyed_balancer;
