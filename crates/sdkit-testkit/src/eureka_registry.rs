//! The Eureka double's registry: leases, the delta queue, eviction, and Eureka's JSON form
//! of an instance and an application, written by hand from the REST documentation.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// How long `GET /apps/delta` remembers a change (Eureka's retention default).
pub(crate) const DELTA_RETENTION: Duration = Duration::from_secs(180);

/// One registered instance.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    /// The registration body's `instance` object, as posted.
    pub(crate) posted: Value,
    pub(crate) status: String,
    pub(crate) duration: Duration,
    pub(crate) renewed: Instant,
    pub(crate) registered_ms: u64,
    pub(crate) renewed_ms: u64,
    pub(crate) heartbeats: u64,
}

/// One entry of the delta queue.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) at: Instant,
    pub(crate) app: String,
    pub(crate) instance: Value,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) apps: BTreeMap<String, BTreeMap<String, Lease>>,
    pub(crate) changes: VecDeque<Change>,
    pub(crate) version: u64,
    pub(crate) registrations: u64,
    pub(crate) requests: BTreeMap<String, u64>,
    pub(crate) fail_next: VecDeque<u16>,
    pub(crate) malformed: bool,
    pub(crate) hang: bool,
    pub(crate) single_as_object: bool,
    pub(crate) basic_auth: Option<String>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Registers (or replaces) `posted` under `app`; records an `ADDED` change.
pub(crate) fn register(state: &mut State, default_lease: Duration, app: &str, posted: Value) {
    let id = posted
        .get("instanceId")
        .and_then(Value::as_str)
        .or_else(|| posted.get("hostName").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    let status = posted
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("UP")
        .to_owned();
    let duration = posted
        .pointer("/leaseInfo/durationInSecs")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .map_or(default_lease, Duration::from_secs);
    let ms = now_ms();
    let lease = Lease {
        posted,
        status,
        duration,
        renewed: Instant::now(),
        registered_ms: ms,
        renewed_ms: ms,
        heartbeats: 0,
    };
    state.registrations += 1;
    record(state, "ADDED", app, &id, &lease);
    state
        .apps
        .entry(app.to_owned())
        .or_default()
        .insert(id, lease);
}

pub(crate) fn set_status(state: &mut State, app: &str, id: &str, status: &str) -> bool {
    let Some(lease) = state.apps.get_mut(app).and_then(|a| a.get_mut(id)) else {
        return false;
    };
    lease.status = status.to_ascii_uppercase();
    let lease = lease.clone();
    record(state, "MODIFIED", app, id, &lease);
    true
}

pub(crate) fn record(state: &mut State, action: &'static str, app: &str, id: &str, lease: &Lease) {
    state.version += 1;
    let instance = render(app, id, lease, Some(action));
    state.changes.push_back(Change {
        at: Instant::now(),
        app: app.to_owned(),
        instance,
    });
    while state
        .changes
        .front()
        .is_some_and(|c| c.at.elapsed() > DELTA_RETENTION)
    {
        state.changes.pop_front();
    }
}

/// Evicts every lease not renewed within its duration (recording `DELETED` changes).
pub(crate) fn evict(state: &mut State) {
    let expired: Vec<(String, String, Lease)> = state
        .apps
        .iter()
        .flat_map(|(app, leases)| {
            leases
                .iter()
                .filter(|(_, l)| l.renewed.elapsed() > l.duration)
                .map(|(id, l)| (app.clone(), id.clone(), l.clone()))
        })
        .collect();
    for (app, id, lease) in expired {
        if let Some(leases) = state.apps.get_mut(&app) {
            leases.remove(&id);
        }
        record(state, "DELETED", &app, &id, &lease);
    }
    state.apps.retain(|_, leases| !leases.is_empty());
}

/// Eureka's JSON form of one instance.
pub(crate) fn render(app: &str, id: &str, lease: &Lease, action: Option<&str>) -> Value {
    let p = &lease.posted;
    let text = |key: &str| p.get(key).cloned().unwrap_or(Value::Null);
    let port = |key: &str, default_enabled: &str| {
        let number = p.pointer(&format!("/{key}/$")).cloned().unwrap_or(json!(0));
        let enabled = p
            .pointer(&format!("/{key}/@enabled"))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| default_enabled.to_owned());
        json!({"$": number, "@enabled": enabled})
    };
    let metadata = match p.get("metadata") {
        Some(Value::Object(m)) if !m.is_empty() => Value::Object(m.clone()),
        _ => json!({"@class": "java.util.Collections$EmptyMap"}),
    };
    json!({
        "instanceId": id,
        "hostName": text("hostName"),
        "app": app,
        "ipAddr": text("ipAddr"),
        "status": lease.status,
        "overriddenStatus": "UNKNOWN",
        "port": port("port", "true"),
        "securePort": port("securePort", "false"),
        "countryId": 1,
        "dataCenterInfo": text("dataCenterInfo"),
        "leaseInfo": {
            "renewalIntervalInSecs": p.pointer("/leaseInfo/renewalIntervalInSecs").cloned().unwrap_or(json!(30)),
            "durationInSecs": lease.duration.as_secs(),
            "registrationTimestamp": lease.registered_ms,
            "lastRenewalTimestamp": lease.renewed_ms,
            "evictionTimestamp": 0,
            "serviceUpTimestamp": lease.registered_ms
        },
        "metadata": metadata,
        "vipAddress": text("vipAddress"),
        "secureVipAddress": text("secureVipAddress"),
        "isCoordinatingDiscoveryServer": "false",
        "lastUpdatedTimestamp": lease.renewed_ms.to_string(),
        "lastDirtyTimestamp": lease.registered_ms.to_string(),
        "actionType": action.unwrap_or("ADDED")
    })
}

pub(crate) fn list(items: Vec<Value>, single_as_object: bool) -> Value {
    if single_as_object && items.len() == 1 {
        items.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(items)
    }
}

pub(crate) fn application(state: &State, app: &str) -> Option<Value> {
    let leases = state.apps.get(app).filter(|l| !l.is_empty())?;
    let instances = leases
        .iter()
        .map(|(id, lease)| render(app, id, lease, None))
        .collect();
    Some(json!({"name": app, "instance": list(instances, state.single_as_object)}))
}

pub(crate) fn apps_hashcode(state: &State) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for lease in state.apps.values().flat_map(BTreeMap::values) {
        *counts.entry(lease.status.as_str()).or_default() += 1;
    }
    counts.iter().map(|(s, n)| format!("{s}_{n}_")).collect()
}
