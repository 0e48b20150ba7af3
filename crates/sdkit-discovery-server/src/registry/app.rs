//! One (appid, env): its zones, its cursor, and the serialised views shared by reads.

use bytes::Bytes;
use sdkit_discovery_proto::{Instance, InstanceInfo, StatusFilter};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Bound on the serialised variants (zone filter × status filter) kept per app.
const MAX_CACHED_VIEWS: usize = 4;

/// One (appid, env): its zones and the cursor clients poll with.
#[derive(Debug, Default)]
pub(crate) struct App {
    pub(crate) zones: BTreeMap<String, Zone>,
    /// `Apps.latestTimestamp`: strictly increasing while the app exists.
    pub(crate) latest: i64,
    /// Instances across zones.
    pub(crate) count: usize,
    /// The store version of this app's last change. Versions only grow, so a serialisation
    /// taken at `generation` is current exactly while it is unchanged.
    pub(crate) generation: u64,
    /// Serialised `InstanceInfo`s by (zone filter, status filter), filled by reads and
    /// emptied by every change of the app (renews included, since they change the JSON).
    pub(crate) views: Mutex<Vec<View>>,
}

/// One serialised view of an app: (zone filter, status filter, JSON of the `InstanceInfo`).
type View = (String, u32, Bytes);

/// A read of an app's instance list: already serialised, or to be serialised outside the
/// lock and offered back with [`Store::put_view`].
pub(crate) enum AppView {
    /// The JSON of the `InstanceInfo`, shared.
    Json(Bytes),
    /// Not serialised since the app's last change: the data, and the app generation to
    /// store the serialisation under.
    Data(u64, InstanceInfo<Arc<Instance>>),
}

/// One zone of an app.
#[derive(Debug, Default)]
pub(crate) struct Zone {
    pub(crate) hosts: BTreeMap<String, Arc<Instance>>,
    /// The per-zone cursor (kept for fidelity; nothing returns it).
    pub(crate) latest: i64,
}

/// Moves a cursor to `max(old + 1, ts)`.
pub(crate) fn bump(cursor: &mut i64, ts: i64) {
    *cursor = cursor.saturating_add(1).max(ts);
}

impl App {
    /// Keeps the serialisation of a view taken at `generation`, unless the app changed since.
    pub(crate) fn put_view(&self, zone: &str, filter: StatusFilter, generation: u64, json: Bytes) {
        if self.generation != generation {
            return;
        }
        let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
        if views.iter().any(|(z, f, _)| z == zone && *f == filter.0) {
            return;
        }
        if views.len() >= MAX_CACHED_VIEWS {
            views.remove(0);
        }
        views.push((zone.to_owned(), filter.0, json));
    }

    /// Records a change at store version `version`: serialised views are stale.
    pub(crate) fn touch(&mut self, version: u64) {
        self.generation = version;
        self.views
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The serialised view for (zone, filter), or the data to serialise.
    pub(crate) fn view(&self, zone: &str, filter: StatusFilter) -> Option<AppView> {
        {
            let views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, _, json)) = views.iter().find(|(z, f, _)| z == zone && *f == filter.0) {
                return Some(AppView::Json(json.clone()));
            }
        }
        Some(AppView::Data(self.generation, self.info(zone, filter)?))
    }

    pub(crate) fn info(
        &self,
        zone: &str,
        filter: StatusFilter,
    ) -> Option<InstanceInfo<Arc<Instance>>> {
        let mut instances = BTreeMap::new();
        for (name, z) in &self.zones {
            if zone.is_empty() || name == zone {
                let list = z
                    .hosts
                    .values()
                    .filter(|i| filter.matches(i.status))
                    .cloned()
                    .collect();
                instances.insert(name.clone(), list);
            }
        }
        if !zone.is_empty() && instances.is_empty() {
            return None;
        }
        Some(InstanceInfo {
            instances,
            scheduler: None,
            latest_timestamp: self.latest,
        })
    }
}
