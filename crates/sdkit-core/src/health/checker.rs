//! [`HealthChecker`]: the background task that checks every endpoint of a set.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;

use super::{Check, HealthConfig, HealthStatus};
use crate::endpoint_set::EndpointSet;

/// Aborts its task when dropped.
struct Abort(JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Statuses = Arc<Mutex<BTreeMap<String, bool>>>;

/// Runs active health checks over an endpoint set until dropped. See the
/// [module docs](super).
///
/// One task per endpoint identity checks it every jittered interval and sets the endpoint's
/// `healthy` readiness bit after the thresholds; the task (and with it the endpoint's health)
/// lives as long as the identity stays in the set. Dropping the checker stops the checks and
/// marks every endpoint healthy again.
pub struct HealthChecker {
    supervisor: Abort,
    statuses: Statuses,
    restore: Box<dyn Fn() + Send + Sync>,
}

impl fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthChecker")
            .field("statuses", &self.statuses())
            .finish_non_exhaustive()
    }
}

impl HealthChecker {
    /// Starts checking the endpoints of `set` with `check` (on the current Tokio runtime).
    pub fn spawn<S, C>(set: &EndpointSet<S>, check: C, config: HealthConfig) -> HealthChecker
    where
        S: Send + Sync + 'static,
        C: Check,
    {
        let statuses: Statuses = Arc::default();
        let check: Arc<dyn Check> = Arc::new(check);
        let supervisor = tokio::spawn(supervise(set.clone(), check, config, Arc::clone(&statuses)));
        let restore = {
            let set = set.clone();
            Box::new(move || {
                for endpoint in set.load().iter() {
                    endpoint.state().set_healthy(true);
                }
            })
        };
        HealthChecker {
            supervisor: Abort(supervisor),
            statuses,
            restore,
        }
    }

    /// The health of each endpoint checked so far, by instance identity.
    pub fn statuses(&self) -> BTreeMap<String, bool> {
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The health of the endpoint with identity `id`, once it has been checked.
    pub fn is_healthy(&self, id: &str) -> Option<bool> {
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.supervisor.0.abort();
        (self.restore)();
    }
}

/// Keeps one checking task per identity in the set.
async fn supervise<S: Send + Sync + 'static>(
    set: EndpointSet<S>,
    check: Arc<dyn Check>,
    config: HealthConfig,
    statuses: Statuses,
) {
    let mut tasks: HashMap<String, Abort> = HashMap::new();
    loop {
        let version = set.version();
        let ids: Vec<String> = set
            .load()
            .iter()
            .map(|e| e.instance().id().to_owned())
            .collect();
        tasks.retain(|id, _| ids.binary_search(id).is_ok());
        statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| ids.binary_search(id).is_ok());
        for id in ids {
            if let Entry::Vacant(slot) = tasks.entry(id) {
                let task = tokio::spawn(check_one(
                    set.clone(),
                    slot.key().clone(),
                    Arc::clone(&check),
                    config,
                    Arc::clone(&statuses),
                ));
                slot.insert(Abort(task));
            }
        }
        set.changed_since(version).await;
    }
}

/// Checks the endpoint with identity `id` forever (its supervisor aborts it when it leaves).
async fn check_one<S: Send + Sync + 'static>(
    set: EndpointSet<S>,
    id: String,
    check: Arc<dyn Check>,
    config: HealthConfig,
    statuses: Statuses,
) {
    let mut status = HealthStatus::new();
    // The first check at a random point of the first interval spreads the checks out.
    let mut delay = config.interval().mul_f64(rand::random::<f64>());
    loop {
        tokio::time::sleep(delay).await;
        delay = config.jittered(rand::random::<f64>());
        let found = {
            let endpoints = set.load();
            let slice = endpoints.as_slice();
            slice
                .binary_search_by(|e| e.instance().id().cmp(id.as_str()))
                .ok()
                .map(|i| (slice[i].instance().clone(), Arc::clone(slice[i].state())))
        };
        let Some((instance, state)) = found else {
            continue;
        };
        let result = tokio::time::timeout(config.timeout(), check.check(&instance)).await;
        let passed = matches!(result, Ok(Ok(())));
        if let Some(healthy) = status.observe(passed, &config) {
            if healthy {
                tracing::info!(instance = %id, addr = instance.addr(), "health check: healthy again");
            } else {
                let reason = match result {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {:?}", config.timeout()),
                };
                tracing::warn!(instance = %id, addr = instance.addr(), %reason, "health check: unhealthy");
            }
        }
        // Applied every round: an endpoint whose state was renewed (new address) gets it too.
        state.set_healthy(status.is_healthy());
        statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), status.is_healthy());
    }
}
