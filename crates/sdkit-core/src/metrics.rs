//! Metrics of every stage, through the [`metrics`] facade: the application installs the
//! recorder (Prometheus, OpenTelemetry, StatsD…), sdkit only records.
//!
//! Every series carries two bounded labels, `service` and `backend` (never an instance address),
//! taken from the instancer and passed down the pipeline: an [`InstanceCache`](crate::InstanceCache)
//! built with [`Labels`] hands them to its subscriptions, an [`Endpointer`](crate::Endpointer)
//! to its [`EndpointSet`](crate::EndpointSet), and balancers built by
//! [`BalancerConfig`](crate::lb::BalancerConfig) and the outlier detector read them from the set.
//! The table of names is in [`names`] and `docs/metrics.md`.
//!
//! Handles are resolved once, when a stage is built: install the recorder before building the
//! pipeline. Without a recorder every handle is a no-op.
//!
//! ```
//! use sdkit_core::metrics::{Labels, names};
//! use sdkit_core::{FixedInstancer, Instance};
//!
//! // With a recorder installed (`metrics::set_global_recorder`), this publishes
//! // sdkit.instancer.instances{service="users",backend="static"} = 1.
//! let labels = Labels::new("users", "static");
//! let _instancer = FixedInstancer::labelled(labels, vec![Instance::from_addr("10.0.0.1:80")]);
//! assert_eq!(names::INSTANCER_INSTANCES, "sdkit.instancer.instances");
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, Label};

pub mod names;

/// The bounded labels of a pipeline: the service name and the backend kind. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Labels {
    service: Arc<str>,
    backend: Arc<str>,
}

impl Default for Labels {
    /// `service=""`, `backend="unknown"`.
    fn default() -> Self {
        Labels::new("", "unknown")
    }
}

impl Labels {
    /// Labels for `service` watched through `backend` (`"discovery"`, `"consul"`, `"static"`…).
    pub fn new(service: impl Into<Arc<str>>, backend: impl Into<Arc<str>>) -> Self {
        Labels {
            service: service.into(),
            backend: backend.into(),
        }
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The backend kind.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    fn to_vec(&self) -> Vec<Label> {
        vec![
            Label::new("service", self.service.to_string()),
            Label::new("backend", self.backend.to_string()),
        ]
    }

    fn with(&self, key: &'static str, value: &'static str) -> Vec<Label> {
        let mut labels = self.to_vec();
        labels.push(Label::new(key, value));
        labels
    }
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An instancer's series (hooked into [`InstanceCache`](crate::InstanceCache), so every backend
/// has them).
#[derive(Debug, Clone)]
pub(crate) struct InstancerMetrics {
    instances: Gauge,
    updates: Counter,
    errors: Counter,
    last_good: Gauge,
}

impl InstancerMetrics {
    pub(crate) fn new(labels: &Labels) -> Self {
        let l = labels.to_vec();
        InstancerMetrics {
            instances: metrics::gauge!(names::INSTANCER_INSTANCES, l.clone()),
            updates: metrics::counter!(names::INSTANCER_UPDATES, l.clone()),
            errors: metrics::counter!(names::INSTANCER_ERRORS, l.clone()),
            last_good: metrics::gauge!(names::INSTANCER_LAST_GOOD, l),
        }
    }

    /// A good snapshot arrived (`changed`: it differs from the current one).
    pub(crate) fn good(&self, len: usize, changed: bool) {
        self.instances.set(len as f64);
        if changed {
            self.updates.increment(1);
        }
        self.last_good.set(unix_seconds());
    }

    pub(crate) fn error(&self) {
        self.errors.increment(1);
    }
}

/// An endpointer's series.
#[derive(Debug, Clone)]
pub(crate) struct EndpointerMetrics {
    endpoints: Gauge,
    ready: Gauge,
    factory_errors: Counter,
}

impl EndpointerMetrics {
    pub(crate) fn new(labels: &Labels) -> Self {
        let l = labels.to_vec();
        EndpointerMetrics {
            endpoints: metrics::gauge!(names::ENDPOINTER_ENDPOINTS, l.clone()),
            ready: metrics::gauge!(names::ENDPOINTER_READY, l.clone()),
            factory_errors: metrics::counter!(names::ENDPOINTER_FACTORY_ERRORS, l),
        }
    }

    pub(crate) fn endpoints(&self, endpoints: usize) {
        self.endpoints.set(endpoints as f64);
    }

    pub(crate) fn ready(&self, ready: usize) {
        self.ready.set(ready as f64);
    }

    pub(crate) fn factory_errors(&self, n: u64) {
        self.factory_errors.increment(n);
    }
}

/// A balancer's pick series (see [`Metered`](crate::lb::Metered)).
#[derive(Debug, Clone)]
pub(crate) struct PickMetrics {
    picks: Counter,
    no_endpoints: Counter,
}

impl PickMetrics {
    pub(crate) fn new(labels: &Labels, policy: &'static str) -> Self {
        PickMetrics {
            picks: metrics::counter!(names::LB_PICKS, labels.with("policy", policy)),
            no_endpoints: metrics::counter!(names::LB_NO_ENDPOINTS, labels.with("policy", policy)),
        }
    }

    #[inline]
    pub(crate) fn count(&self, picked: bool) {
        if picked {
            self.picks.increment(1);
        } else {
            self.no_endpoints.increment(1);
        }
    }
}

/// The outlier detector's series.
#[derive(Debug, Clone)]
pub(crate) struct OutlierMetrics {
    ejections: Counter,
    ejected: Gauge,
    panic: Gauge,
}

impl OutlierMetrics {
    pub(crate) fn new(labels: &Labels) -> Self {
        let l = labels.to_vec();
        OutlierMetrics {
            ejections: metrics::counter!(names::LB_EJECTIONS, l.clone()),
            ejected: metrics::gauge!(names::LB_EJECTED, l.clone()),
            panic: metrics::gauge!(names::LB_PANIC_MODE, l),
        }
    }

    pub(crate) fn ejection(&self) {
        self.ejections.increment(1);
    }

    pub(crate) fn ejected_now(&self, n: usize) {
        self.ejected.set(n as f64);
    }

    pub(crate) fn panic(&self, on: bool) {
        self.panic.set(if on { 1.0 } else { 0.0 });
    }
}

/// Why a retry gave up early for lack of budget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Exhausted {
    /// The [`RetryBudget`](crate::retry_budget::RetryBudget) refused a retry or hedge.
    RetryBudget,
    /// The call's time budget ran out.
    Deadline,
}

/// A retry's series.
#[derive(Debug, Clone)]
pub(crate) struct RetryMetrics {
    attempts: Counter,
    retries: Counter,
    hedges: Counter,
    retry_budget: Counter,
    deadline: Counter,
    duration: Histogram,
    labels: Labels,
}

impl RetryMetrics {
    pub(crate) fn new(labels: &Labels) -> Self {
        let l = labels.to_vec();
        RetryMetrics {
            labels: labels.clone(),
            attempts: metrics::counter!(names::RETRY_ATTEMPTS, l.clone()),
            retries: metrics::counter!(names::RETRY_RETRIES, l.clone()),
            hedges: metrics::counter!(names::RETRY_HEDGES, l.clone()),
            retry_budget: metrics::counter!(
                names::RETRY_BUDGET_EXHAUSTED,
                labels.with("budget", "retry")
            ),
            deadline: metrics::counter!(
                names::RETRY_BUDGET_EXHAUSTED,
                labels.with("budget", "deadline")
            ),
            duration: metrics::histogram!(names::CALL_DURATION, l),
        }
    }

    pub(crate) fn attempt(&self, number: u32) {
        self.attempts.increment(1);
        if number > 1 {
            self.retries.increment(1);
        }
    }

    /// The span of one attempt (and its hedge).
    pub(crate) fn attempt_span(&self, number: u32) -> tracing::Span {
        tracing::debug_span!(
            "attempt",
            backend = self.labels.backend(),
            service = self.labels.service(),
            number
        )
    }

    pub(crate) fn hedge(&self) {
        self.attempts.increment(1);
        self.hedges.increment(1);
    }

    pub(crate) fn exhausted(&self, what: Exhausted) {
        match what {
            Exhausted::RetryBudget => self.retry_budget.increment(1),
            Exhausted::Deadline => self.deadline.increment(1),
        }
    }

    pub(crate) fn call(&self, seconds: f64) {
        self.duration.record(seconds);
    }
}

/// A registrar's series (hooked into [`KeepAlive`](crate::registrar::KeepAlive)).
#[derive(Debug, Clone)]
pub(crate) struct RegistrarMetrics {
    registered: Gauge,
    renew_failures: Counter,
    reregistrations: Counter,
}

impl RegistrarMetrics {
    pub(crate) fn new(labels: &Labels) -> Self {
        let l = labels.to_vec();
        RegistrarMetrics {
            registered: metrics::gauge!(names::REGISTRAR_REGISTERED, l.clone()),
            renew_failures: metrics::counter!(names::REGISTRAR_RENEW_FAILURES, l.clone()),
            reregistrations: metrics::counter!(names::REGISTRAR_REREGISTRATIONS, l),
        }
    }

    pub(crate) fn registered(&self, on: bool) {
        self.registered.set(if on { 1.0 } else { 0.0 });
    }

    pub(crate) fn renew_failed(&self) {
        self.renew_failures.increment(1);
    }

    pub(crate) fn reregistered(&self) {
        self.reregistrations.increment(1);
    }
}

/// Describes every sdkit series (help text and unit) to the installed recorder; call once after
/// installing it (optional: exporters work without descriptions).
pub fn describe() {
    for (name, kind, unit, help) in names::TABLE {
        let unit = match *unit {
            "seconds" => Some(metrics::Unit::Seconds),
            "1" => Some(metrics::Unit::Count),
            _ => None,
        };
        let help: &'static str = help;
        match (kind, unit) {
            (names::Kind::Counter, Some(u)) => metrics::describe_counter!(*name, u, help),
            (names::Kind::Counter, None) => metrics::describe_counter!(*name, help),
            (names::Kind::Gauge, Some(u)) => metrics::describe_gauge!(*name, u, help),
            (names::Kind::Gauge, None) => metrics::describe_gauge!(*name, help),
            (names::Kind::Histogram, Some(u)) => metrics::describe_histogram!(*name, u, help),
            (names::Kind::Histogram, None) => metrics::describe_histogram!(*name, help),
        }
    }
}
