//! The name of every series sdkit records, with its kind, unit and meaning (the same table as
//! `docs/metrics.md`). Names follow OpenTelemetry's conventions (dotted, lower case, units in
//! seconds); `rpc.client.call.duration` is OpenTelemetry's RPC semantic-convention name, the
//! balancer series follow Envoy's and gRPC's (picks, ejections, panic mode). A Prometheus
//! exporter turns dots into underscores and adds `_total` to counters.

/// The kind of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution.
    Histogram,
}

/// Instances in the instancer's current snapshot (the last good set, also while erroring).
pub const INSTANCER_INSTANCES: &str = "sdkit.instancer.instances";
/// Distinct snapshots published by the instancer.
pub const INSTANCER_UPDATES: &str = "sdkit.instancer.updates";
/// Errors reported by the instancer's source (each failed watch or poll).
pub const INSTANCER_ERRORS: &str = "sdkit.instancer.errors";
/// Unix time of the last good snapshot; `time() - value` is the seconds since.
pub const INSTANCER_LAST_GOOD: &str = "sdkit.instancer.last_good_snapshot.time";
/// Endpoints the endpointer publishes.
pub const ENDPOINTER_ENDPOINTS: &str = "sdkit.endpointer.endpoints";
/// Endpoints ready (no readiness bit set) when the endpointer last published.
pub const ENDPOINTER_READY: &str = "sdkit.endpointer.ready";
/// Factory calls that failed (the instance was skipped and is retried).
pub const ENDPOINTER_FACTORY_ERRORS: &str = "sdkit.endpointer.factory_errors";
/// Picks that returned an endpoint (label `policy`).
pub const LB_PICKS: &str = "sdkit.lb.picks";
/// Picks that found no endpoint (label `policy`).
pub const LB_NO_ENDPOINTS: &str = "sdkit.lb.no_endpoints";
/// Ejections by outlier detection.
pub const LB_EJECTIONS: &str = "sdkit.lb.ejections";
/// Endpoints ejected now.
pub const LB_EJECTED: &str = "sdkit.lb.ejected";
/// 1 while fewer than half of the endpoints are ready and readiness is ignored, else 0.
pub const LB_PANIC_MODE: &str = "sdkit.lb.panic_mode";
/// Attempts started by a retry, hedges included.
pub const RETRY_ATTEMPTS: &str = "sdkit.retry.attempts";
/// Attempts after the first of a call.
pub const RETRY_RETRIES: &str = "sdkit.retry.retries";
/// Hedged attempts.
pub const RETRY_HEDGES: &str = "sdkit.retry.hedges";
/// Calls given up for lack of budget (label `budget`: `retry` for the retry budget, `deadline`
/// for the time budget).
pub const RETRY_BUDGET_EXHAUSTED: &str = "sdkit.retry.budget_exhausted";
/// Duration of a call through a retry, all attempts and waits included.
pub const CALL_DURATION: &str = "rpc.client.call.duration";
/// 1 while the registrar's instance is registered, else 0.
pub const REGISTRAR_REGISTERED: &str = "sdkit.registrar.registered";
/// Renewals that failed (retried with backoff).
pub const REGISTRAR_RENEW_FAILURES: &str = "sdkit.registrar.renew_failures";
/// Registrations made again after the registry lost the instance.
pub const REGISTRAR_REREGISTRATIONS: &str = "sdkit.registrar.reregistrations";

/// Every series: name, kind, unit (`"1"` for counts, `"seconds"`), help.
pub const TABLE: &[(&str, Kind, &str, &str)] = &[
    (
        INSTANCER_INSTANCES,
        Kind::Gauge,
        "1",
        "Instances in the current snapshot.",
    ),
    (
        INSTANCER_UPDATES,
        Kind::Counter,
        "1",
        "Distinct snapshots published.",
    ),
    (
        INSTANCER_ERRORS,
        Kind::Counter,
        "1",
        "Errors reported by the source.",
    ),
    (
        INSTANCER_LAST_GOOD,
        Kind::Gauge,
        "seconds",
        "Unix time of the last good snapshot.",
    ),
    (
        ENDPOINTER_ENDPOINTS,
        Kind::Gauge,
        "1",
        "Endpoints published.",
    ),
    (
        ENDPOINTER_READY,
        Kind::Gauge,
        "1",
        "Endpoints ready at the last publish.",
    ),
    (
        ENDPOINTER_FACTORY_ERRORS,
        Kind::Counter,
        "1",
        "Factory calls that failed.",
    ),
    (
        LB_PICKS,
        Kind::Counter,
        "1",
        "Picks that returned an endpoint.",
    ),
    (
        LB_NO_ENDPOINTS,
        Kind::Counter,
        "1",
        "Picks that found no endpoint.",
    ),
    (LB_EJECTIONS, Kind::Counter, "1", "Outlier ejections."),
    (LB_EJECTED, Kind::Gauge, "1", "Endpoints ejected now."),
    (
        LB_PANIC_MODE,
        Kind::Gauge,
        "1",
        "1 while readiness is ignored (panic mode).",
    ),
    (
        RETRY_ATTEMPTS,
        Kind::Counter,
        "1",
        "Attempts started, hedges included.",
    ),
    (
        RETRY_RETRIES,
        Kind::Counter,
        "1",
        "Attempts after the first.",
    ),
    (RETRY_HEDGES, Kind::Counter, "1", "Hedged attempts."),
    (
        RETRY_BUDGET_EXHAUSTED,
        Kind::Counter,
        "1",
        "Calls given up for lack of budget.",
    ),
    (
        CALL_DURATION,
        Kind::Histogram,
        "seconds",
        "Call duration, all attempts included.",
    ),
    (
        REGISTRAR_REGISTERED,
        Kind::Gauge,
        "1",
        "1 while registered.",
    ),
    (
        REGISTRAR_RENEW_FAILURES,
        Kind::Counter,
        "1",
        "Renewals that failed.",
    ),
    (
        REGISTRAR_REREGISTRATIONS,
        Kind::Counter,
        "1",
        "Registrations made again after a loss.",
    ),
];
