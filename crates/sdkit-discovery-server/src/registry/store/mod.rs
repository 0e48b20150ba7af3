//! The registry's data: env → appid → zone → hostname → instance, with the cursors.
//!
//! Pure data logic without locks or I/O, so every rule of the reference (upsert by hostname,
//! dirty-timestamp wins, `max(old + 1, ts)` cursors, deleting empty zones and apps) is in one
//! place. Instances are `Arc`s: readers copy pointers under the lock and serialise outside it.

use super::app::{App, AppView, bump};
use crate::Limits;
use bytes::Bytes;
#[cfg(test)]
use sdkit_discovery_proto::InstanceInfo;
use sdkit_discovery_proto::args::{RegisterArgs, SetArgs};
use sdkit_discovery_proto::{INFRA_DISCOVERY, Instance, Status, StatusFilter};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Identifies one instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct InstanceKey {
    pub(crate) env: String,
    pub(crate) appid: String,
    pub(crate) zone: String,
    pub(crate) hostname: String,
}

/// The timestamps of a write, decided by the registry from its own clock (and, for a
/// trusted peer, from the peer's values clamped to the clock's ceiling).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    /// The server's now.
    pub(crate) now: i64,
    /// The dirty timestamp to record (last writer wins by it).
    pub(crate) dirty: i64,
    /// The value the cursors move to at least.
    pub(crate) latest: i64,
}

impl Stamp {
    /// A write stamped with the server's clock only.
    pub(crate) fn at(now: i64) -> Stamp {
        Stamp {
            now,
            dirty: now,
            latest: now,
        }
    }
}

/// A capacity limit was reached; the text names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CapacityError(pub(crate) String);

/// Why a renew failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RenewError {
    /// Unknown instance, or (replication) the sender's copy is newer.
    NotFound,
    /// Replication: this node's copy is newer.
    Conflict(Arc<Instance>),
}

/// What a poll sees for one appid; `T` is the UP instance list (serialised or not yet).
pub(crate) enum PollState<T = Bytes> {
    /// Unknown (appid, env), or the zone filter matches nothing.
    Missing,
    /// The client's cursor is current.
    NotModified,
    /// Newer than the client's cursor: the UP instances.
    Changed(T),
}

/// The whole registry.
#[derive(Debug)]
pub(crate) struct Store {
    envs: HashMap<String, HashMap<String, App>>,
    apps: usize,
    instances: usize,
    /// The server's env: `infra.discovery` is looked up there when a client's env has none.
    home_env: String,
    /// The server's own instance, exempt from eviction and expected renews.
    own: Option<InstanceKey>,
    /// Bumped by every change of any instance (renews included): equal versions mean
    /// identical reads, which lets woken polls share one serialised answer.
    version: u64,
}

/// Whether metadata fits the register limits; the error names the limit.
pub(crate) fn check_metadata(
    meta: &sdkit_discovery_proto::Metadata,
    limits: &Limits,
) -> Result<(), String> {
    if meta.len() > limits.max_metadata_keys {
        return Err(format!(
            "metadata has {} keys (limit {})",
            meta.len(),
            limits.max_metadata_keys
        ));
    }
    let bytes = serde_json::to_vec(meta).map_or(usize::MAX, |v| v.len());
    let max = limits.fields.max_metadata_len;
    if bytes > max {
        return Err(format!("metadata is {bytes} bytes of JSON (limit {max})"));
    }
    Ok(())
}

impl Store {
    pub(crate) fn new(home_env: String) -> Store {
        Store {
            envs: HashMap::new(),
            apps: 0,
            instances: 0,
            home_env,
            own: None,
            version: 0,
        }
    }

    /// Whether `key` is the server's own instance.
    pub(crate) fn is_own(&self, key: &InstanceKey) -> bool {
        self.own.as_ref() == Some(key)
    }

    pub(crate) fn set_own(&mut self, key: InstanceKey) {
        self.own = Some(key);
    }

    /// The change counter.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// (apps, instances)
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.apps, self.instances)
    }

    /// Instances expected to renew (all but the server's own).
    pub(crate) fn renewing_instances(&self) -> usize {
        let own = self.own.as_ref().is_some_and(|k| self.get(k).is_some());
        self.instances - usize::from(own)
    }

    fn get(&self, k: &InstanceKey) -> Option<&Arc<Instance>> {
        self.envs
            .get(&k.env)?
            .get(&k.appid)?
            .zones
            .get(&k.zone)?
            .hosts
            .get(&k.hostname)
    }

    /// The app for a read; `infra.discovery` falls back to the server's env.
    pub(crate) fn app(&self, env: &str, appid: &str) -> Option<&App> {
        let direct = self.envs.get(env).and_then(|apps| apps.get(appid));
        match direct {
            None if appid == INFRA_DISCOVERY => self.envs.get(&self.home_env)?.get(appid),
            found => found,
        }
    }

    /// The env whose `infra.discovery` answers reads in any env.
    pub(crate) fn home_env(&self) -> &str {
        &self.home_env
    }

    /// Upserts an instance (reference `register`). Returns the previous record's renew
    /// timestamp, `None` when the hostname is new.
    pub(crate) fn register(
        &mut self,
        a: &RegisterArgs,
        stamp: Stamp,
        limits: &Limits,
    ) -> Result<Option<i64>, CapacityError> {
        let now = stamp.now;
        let app = self.envs.get(&a.env).and_then(|apps| apps.get(&a.appid));
        let old = app
            .and_then(|app| app.zones.get(&a.zone)?.hosts.get(&a.hostname))
            .cloned();
        if app.is_none() && self.apps >= limits.max_apps {
            return Err(CapacityError(format!(
                "too many apps (limit {})",
                limits.max_apps
            )));
        }
        if old.is_none() {
            if app.is_some_and(|app| app.count >= limits.max_instances_per_app) {
                return Err(CapacityError(format!(
                    "too many instances of {} in env {} (limit {})",
                    a.appid, a.env, limits.max_instances_per_app
                )));
            }
            if self.instances >= limits.max_instances {
                return Err(CapacityError(format!(
                    "too many instances (limit {})",
                    limits.max_instances
                )));
            }
        }
        let mut fresh = Instance {
            region: a.region.clone(),
            zone: a.zone.clone(),
            env: a.env.clone(),
            appid: a.appid.clone(),
            hostname: a.hostname.clone(),
            addrs: a.addrs.clone(),
            version: a.version.clone(),
            metadata: a.metadata.clone(),
            status: a.status,
            reg_timestamp: now,
            up_timestamp: now,
            renew_timestamp: now,
            dirty_timestamp: stamp.dirty,
            latest_timestamp: now,
        };
        let prev_renew = old.as_ref().map(|o| o.renew_timestamp);
        let is_new = old.is_none();
        let stored = match old {
            // Last writer wins by dirty timestamp: a newer existing record stays.
            Some(old) if old.dirty_timestamp > fresh.dirty_timestamp => old,
            Some(old) => {
                fresh.up_timestamp = old.up_timestamp;
                Arc::new(fresh)
            }
            None => Arc::new(fresh),
        };
        if is_new {
            self.instances += 1;
        }
        self.version += 1;
        let version = self.version;
        let apps = self.envs.entry(a.env.clone()).or_default();
        if !apps.contains_key(&a.appid) {
            self.apps += 1;
        }
        let app = apps.entry(a.appid.clone()).or_default();
        app.touch(version);
        if is_new {
            app.count += 1;
        }
        bump(&mut app.latest, stored.latest_timestamp);
        let zone = app.zones.entry(a.zone.clone()).or_default();
        bump(&mut zone.latest, stamp.latest);
        zone.hosts.insert(a.hostname.clone(), stored);
        Ok(prev_renew)
    }

    /// Renews an instance (reference `renew`, with the replication dirty-timestamp check).
    /// `prev` receives the renew timestamp the instance had before.
    pub(crate) fn renew(
        &mut self,
        k: &InstanceKey,
        replication: bool,
        dirty: i64,
        now: i64,
        prev: &mut Option<i64>,
    ) -> Result<Arc<Instance>, RenewError> {
        let version = self.version + 1;
        let app = self
            .envs
            .get_mut(&k.env)
            .and_then(|apps| apps.get_mut(&k.appid))
            .ok_or(RenewError::NotFound)?;
        let slot = app
            .zones
            .get_mut(&k.zone)
            .and_then(|zone| zone.hosts.get_mut(&k.hostname))
            .ok_or(RenewError::NotFound)?;
        *prev = Some(slot.renew_timestamp);
        Arc::make_mut(slot).renew_timestamp = now;
        let ins = Arc::clone(slot);
        app.touch(version);
        self.version = version;
        if replication {
            if dirty > ins.dirty_timestamp {
                return Err(RenewError::NotFound);
            }
            if dirty < ins.dirty_timestamp {
                return Err(RenewError::Conflict(ins));
            }
        }
        Ok(ins)
    }

    /// Removes an instance, bumping cursors with `latest`; drops empty zones and apps.
    pub(crate) fn remove(&mut self, k: &InstanceKey, latest: i64) -> bool {
        let Some(apps) = self.envs.get_mut(&k.env) else {
            return false;
        };
        let Some(app) = apps.get_mut(&k.appid) else {
            return false;
        };
        let Some(zone) = app.zones.get_mut(&k.zone) else {
            return false;
        };
        if zone.hosts.remove(&k.hostname).is_none() {
            return false;
        }
        bump(&mut zone.latest, latest);
        self.version += 1;
        let zone_empty = zone.hosts.is_empty();
        bump(&mut app.latest, latest);
        app.touch(self.version);
        app.count -= 1;
        self.instances -= 1;
        if zone_empty {
            app.zones.remove(&k.zone);
        }
        if app.zones.is_empty() {
            apps.remove(&k.appid);
            self.apps -= 1;
            if apps.is_empty() {
                self.envs.remove(&k.env);
            }
        }
        true
    }

    /// Changes status and merges metadata (reference `set`), all or nothing; also advances
    /// the polled (appid, env) cursor, which the reference forgets. Errors name what is missing.
    /// Merged metadata is bounded like a register's (`max_metadata_keys` keys and
    /// `max_metadata_len` bytes of JSON).
    pub(crate) fn set(&mut self, a: &SetArgs, ts: i64, limits: &Limits) -> Result<(), String> {
        let version = self.version + 1;
        let app = self
            .envs
            .get_mut(&a.env)
            .and_then(|apps| apps.get_mut(&a.appid))
            .ok_or_else(|| format!("appid {} not found in env {}", a.appid, a.env))?;
        let zone = app
            .zones
            .get_mut(&a.zone)
            .ok_or_else(|| format!("zone {} not found for appid {}", a.zone, a.appid))?;
        if let Some(h) = a.hostnames.iter().find(|h| !zone.hosts.contains_key(*h)) {
            return Err(format!("hostname {h} not found"));
        }
        for (host, meta) in a.hostnames.iter().zip(&a.metadata) {
            let Some(ins) = zone.hosts.get(host) else {
                continue;
            };
            let mut merged = ins.metadata.clone();
            merged.extend(meta.iter().map(|(k, v)| (k.clone(), v.clone())));
            check_metadata(&merged, limits).map_err(|e| format!("hostname {host}: {e}"))?;
        }
        for (i, host) in a.hostnames.iter().enumerate() {
            let Some(ins) = zone.hosts.get_mut(host) else {
                continue;
            };
            let ins = Arc::make_mut(ins);
            if let Some(&status) = a.statuses.get(i) {
                if status == Status::Up.as_u32() && ins.status != status {
                    ins.up_timestamp = ts;
                }
                ins.status = status;
            }
            if let Some(meta) = a.metadata.get(i) {
                ins.metadata
                    .extend(meta.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            ins.latest_timestamp = ts;
            ins.dirty_timestamp = ts;
        }
        bump(&mut zone.latest, ts);
        bump(&mut app.latest, ts);
        app.touch(version);
        self.version = version;
        Ok(())
    }

    /// `fetch`: the matching zones, instances filtered by status; `None` when the app is
    /// unknown or a requested zone is absent (tests; handlers read serialised views).
    #[cfg(test)]
    pub(crate) fn fetch(
        &self,
        env: &str,
        appid: &str,
        zone: &str,
        filter: StatusFilter,
    ) -> Option<InstanceInfo<Arc<Instance>>> {
        self.app(env, appid).and_then(|app| app.info(zone, filter))
    }

    /// `fetch`, from the serialised view when the app has not changed since it was taken.
    pub(crate) fn fetch_view(
        &self,
        env: &str,
        appid: &str,
        zone: &str,
        filter: StatusFilter,
    ) -> Option<AppView> {
        self.app(env, appid)?.view(zone, filter)
    }

    /// Keeps the serialisation of a view taken at `generation`, unless the app changed since.
    pub(crate) fn put_view(
        &self,
        env: &str,
        appid: &str,
        zone: &str,
        filter: StatusFilter,
        generation: u64,
        json: Bytes,
    ) {
        if let Some(app) = self.app(env, appid) {
            app.put_view(zone, filter, generation, json);
        }
    }

    /// What a poll with `cursor` sees (UP instances only).
    pub(crate) fn poll(
        &self,
        env: &str,
        appid: &str,
        zone: &str,
        cursor: i64,
    ) -> PollState<AppView> {
        let Some(app) = self.app(env, appid) else {
            return PollState::Missing;
        };
        if !zone.is_empty() && !app.zones.contains_key(zone) {
            return PollState::Missing;
        }
        // Only the app's own cursor is current. A cursor beyond it was never issued by this
        // node for this app (another node's, or from before the app was deleted and
        // re-created): answer at once so the client resynchronises instead of waiting.
        if cursor == app.latest {
            return PollState::NotModified;
        }
        match app.view(zone, StatusFilter::UP) {
            Some(view) => PollState::Changed(view),
            None => PollState::Missing,
        }
    }

    /// The largest app cursor.
    pub(crate) fn max_cursor(&self) -> i64 {
        self.envs
            .values()
            .flat_map(|apps| apps.values())
            .map(|app| app.latest)
            .max()
            .unwrap_or(0)
    }

    /// `fetch/all`: appid → every instance across envs and zones.
    pub(crate) fn all(&self) -> BTreeMap<String, Vec<Arc<Instance>>> {
        let mut out: BTreeMap<String, Vec<Arc<Instance>>> = BTreeMap::new();
        for apps in self.envs.values() {
            for (appid, app) in apps {
                let list = out.entry(appid.clone()).or_default();
                for zone in app.zones.values() {
                    list.extend(zone.hosts.values().cloned());
                }
            }
        }
        out
    }

    /// Instances not renewed since `before` (exclusive), stalest first, the server's own excluded.
    pub(crate) fn expired(&self, before: i64) -> Vec<(i64, InstanceKey)> {
        let mut out = Vec::new();
        for (env, apps) in &self.envs {
            for (appid, app) in apps {
                for (zone, z) in &app.zones {
                    for (hostname, ins) in &z.hosts {
                        if ins.renew_timestamp >= before {
                            continue;
                        }
                        let key = InstanceKey {
                            env: env.clone(),
                            appid: appid.clone(),
                            zone: zone.clone(),
                            hostname: hostname.clone(),
                        };
                        if self.own.as_ref() != Some(&key) {
                            out.push((ins.renew_timestamp, key));
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests;
