//! The registry: the store behind a lock, change topics for long polls, and the renew guard.
//!
//! Every write takes the lock briefly, then notifies the (env, appid) topic after releasing
//! it. Reads copy `Arc<Instance>` pointers under a read lock and serialise outside it.

mod app;
mod evict;
mod guard;
mod store;
mod topics;

use app::AppView;
use store::Stamp;
pub(crate) use store::{CapacityError, InstanceKey, PollState, RenewError, check_metadata};
pub(crate) use topics::Subscription;

use crate::Limits;
use crate::clock::Clock;
use crate::escape::Escaped;
use bytes::Bytes;
use guard::Guard;
use sdkit_discovery_proto::args::{CancelArgs, RegisterArgs, RenewArgs, SetArgs};
use sdkit_discovery_proto::{INFRA_DISCOVERY, Instance, InstanceInfo, StatusFilter};
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use store::Store;
use topics::Topics;
use tracing::debug;

/// The shared registry.
#[derive(Debug)]
pub(crate) struct Registry {
    store: RwLock<Store>,
    topics: Arc<Topics>,
    guard: Guard,
    limits: Limits,
    /// The only source of stored timestamps.
    pub(crate) clock: Clock,
}

impl Registry {
    /// An empty registry; `infra.discovery` reads fall back to `home_env`.
    pub(crate) fn new(home_env: String, limits: Limits) -> Registry {
        let clock = Clock::default();
        Registry {
            store: RwLock::new(Store::new(home_env)),
            topics: Arc::new(Topics::default()),
            guard: Guard::new(clock.now()),
            limits,
            clock,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the server's own instance, exempt from eviction.
    pub(crate) fn register_own(&self, args: &RegisterArgs) -> Result<(), CapacityError> {
        {
            let mut store = self.write();
            store.register(args, Stamp::at(self.clock.now()), &self.limits)?;
            store.set_own(InstanceKey {
                env: args.env.clone(),
                appid: args.appid.clone(),
                zone: args.zone.clone(),
                hostname: args.hostname.clone(),
            });
        }
        self.topics.notify(&args.env, &args.appid);
        Ok(())
    }

    /// Whether `key` is the server's own instance (clients may not write it).
    pub(crate) fn is_own(&self, key: &InstanceKey) -> bool {
        self.read().is_own(key)
    }

    /// The timestamps of a write: the server's clock; a trusted peer's `dirty` / `latest`
    /// (when positive) clamped to the clock's ceiling.
    fn stamp(&self, trusted: bool, dirty: i64, latest: i64) -> Stamp {
        let now = self.clock.now();
        let ceiling = self.clock.ceiling();
        let from_peer = |ts: i64| {
            if trusted && ts > 0 {
                ts.min(ceiling)
            } else {
                now
            }
        };
        Stamp {
            now,
            dirty: from_peer(dirty),
            latest: from_peer(latest).max(now),
        }
    }

    /// `register`; `trusted` when the caller is a configured peer.
    pub(crate) fn register(&self, args: &RegisterArgs, trusted: bool) -> Result<(), CapacityError> {
        let stamp = self.stamp(trusted, args.dirty_timestamp, args.latest_timestamp);
        let prev = self.write().register(args, stamp, &self.limits)?;
        debug!(
            appid = %Escaped(&args.appid),
            env = %Escaped(&args.env),
            hostname = %Escaped(&args.hostname),
            is_new = prev.is_none(),
            "register"
        );
        self.topics.notify(&args.env, &args.appid);
        Ok(())
    }

    /// `renew`; counts for self-preservation the first renew of an instance in a lease
    /// window (a client renewing in a loop counts once). The replication conflict rules
    /// apply only to a `trusted` caller.
    pub(crate) fn renew(&self, a: &RenewArgs, trusted: bool) -> Result<Arc<Instance>, RenewError> {
        let key = InstanceKey {
            env: a.env.clone(),
            appid: a.appid.clone(),
            zone: a.zone.clone(),
            hostname: a.hostname.clone(),
        };
        let mut prev = None;
        let result = self.write().renew(
            &key,
            trusted && a.replication,
            a.dirty_timestamp,
            self.clock.now(),
            &mut prev,
        );
        if let Some(prev) = prev {
            self.guard.count_renew(prev);
        }
        result
    }

    /// `cancel`; returns whether the instance existed.
    pub(crate) fn cancel(&self, a: &CancelArgs, trusted: bool) -> bool {
        let key = InstanceKey {
            env: a.env.clone(),
            appid: a.appid.clone(),
            zone: a.zone.clone(),
            hostname: a.hostname.clone(),
        };
        let stamp = self.stamp(trusted, 0, a.latest_timestamp);
        let removed = self.write().remove(&key, stamp.latest);
        if removed {
            debug!(
                appid = %Escaped(&a.appid),
                env = %Escaped(&a.env),
                hostname = %Escaped(&a.hostname),
                "cancel"
            );
            self.topics.notify(&a.env, &a.appid);
        }
        removed
    }

    /// `set`; the error names what was not found or which limit the merge passes.
    pub(crate) fn set(&self, a: &SetArgs, trusted: bool) -> Result<(), String> {
        let stamp = self.stamp(trusted, a.set_timestamp, a.set_timestamp);
        self.write().set(a, stamp.dirty, &self.limits)?;
        self.topics.notify(&a.env, &a.appid);
        Ok(())
    }

    /// Largest cursor of any app (tests: never beyond the clock's ceiling).
    #[doc(hidden)]
    pub(crate) fn max_cursor(&self) -> i64 {
        self.read().max_cursor()
    }

    /// `fetch`, serialised: the JSON of the `InstanceInfo`, `None` for an unknown app or
    /// absent zone. Shared by every read until the app changes; serialised outside the lock.
    pub(crate) fn fetch_json(
        &self,
        env: &str,
        appid: &str,
        zone: &str,
        filter: StatusFilter,
    ) -> Option<Result<Bytes, serde_json::Error>> {
        let view = self.read().fetch_view(env, appid, zone, filter)?;
        Some(self.resolve(env, appid, zone, filter, view))
    }

    /// The JSON of a view: as stored, or serialised now and offered back to the store.
    fn resolve(
        &self,
        env: &str,
        appid: &str,
        zone: &str,
        filter: StatusFilter,
        view: AppView,
    ) -> Result<Bytes, serde_json::Error> {
        match view {
            AppView::Json(json) => Ok(json),
            AppView::Data(generation, info) => {
                let json = serialise_info(&info)?;
                self.read()
                    .put_view(env, appid, zone, filter, generation, json.clone());
                Ok(json)
            }
        }
    }

    /// `fetch/all`.
    pub(crate) fn all(&self) -> BTreeMap<String, Vec<Arc<Instance>>> {
        self.read().all()
    }

    /// What a poll sees for each (appid, cursor), and the store version it saw, under one
    /// read lock.
    pub(crate) fn poll(
        &self,
        env: &str,
        zone: &str,
        appids: &[String],
        cursors: &[i64],
    ) -> (u64, Vec<Result<PollState, serde_json::Error>>) {
        let (version, views): (u64, Vec<PollState<AppView>>) = {
            let store = self.read();
            let views = appids
                .iter()
                .zip(cursors)
                .map(|(a, &c)| store.poll(env, a, zone, c))
                .collect();
            (store.version(), views)
        };
        let states = appids
            .iter()
            .zip(views)
            .map(|(appid, view)| {
                Ok(match view {
                    PollState::Missing => PollState::Missing,
                    PollState::NotModified => PollState::NotModified,
                    PollState::Changed(view) => PollState::Changed(self.resolve(
                        env,
                        appid,
                        zone,
                        StatusFilter::UP,
                        view,
                    )?),
                })
            })
            .collect();
        (version, states)
    }

    /// The store's change counter.
    pub(crate) fn version(&self) -> u64 {
        self.read().version()
    }

    /// Listens for changes of (env, appid). For `infra.discovery` the server's env is
    /// listened to as well, since reads fall back to it.
    pub(crate) fn subscribe(&self, env: &str, appid: &str) -> Vec<Subscription> {
        let mut subs = vec![self.topics.subscribe(env, appid)];
        if appid == INFRA_DISCOVERY {
            let home = self.read().home_env().to_owned();
            if home != env {
                subs.push(self.topics.subscribe(&home, appid));
            }
        }
        subs
    }

    /// (apps, instances)
    pub(crate) fn sizes(&self) -> (usize, usize) {
        self.read().sizes()
    }

    /// Whether the last lease check was restrained by self-preservation.
    pub(crate) fn is_protected(&self) -> bool {
        self.guard.is_protected()
    }
}

/// Serialises an `InstanceInfo` into one buffer sized from its contents.
fn serialise_info(info: &InstanceInfo<Arc<Instance>>) -> Result<Bytes, serde_json::Error> {
    let mut estimate = 64;
    for (zone, list) in &info.instances {
        estimate += zone.len() + 8;
        for i in list {
            // Keys, punctuation and five 19-digit timestamps come to about 300 bytes.
            estimate += 300
                + i.region.len()
                + i.zone.len()
                + i.env.len()
                + i.appid.len()
                + i.hostname.len()
                + i.version.len()
                + i.addrs.iter().map(|a| a.len() + 3).sum::<usize>()
                + i.metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 6)
                    .sum::<usize>();
        }
    }
    let mut buf = Vec::with_capacity(estimate);
    serde_json::to_writer(&mut buf, info)?;
    // The estimate is generous; the buffer is kept until the app changes, so give the
    // surplus back (this runs once per change, not per answer).
    buf.shrink_to_fit();
    Ok(Bytes::from(buf))
}
