//! Bounds on request sizes and on registry state.
//!
//! Worst-case memory is bounded by `max_instances` × the largest instance the field limits
//! allow (≈ 13 KiB with the defaults), plus `max_parked_polls` parked requests.

use sdkit_discovery_proto::FieldLimits;

/// Size and capacity limits. Over a capacity limit a request gets code -509 (`LimitExceed`)
/// with a message saying which limit; a too-large body gets HTTP 413.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (default 64 KiB).
    pub max_body_bytes: usize,
    /// Most (appid, env) pairs (default 10 000).
    pub max_apps: usize,
    /// Most instances of one (appid, env) across its zones (default 10 000).
    pub max_instances_per_app: usize,
    /// Most instances in total (default 200 000).
    pub max_instances: usize,
    /// Most concurrently parked `poll`/`polls` requests (default 20 000).
    pub max_parked_polls: usize,
    /// Per-field bounds (lengths, counts).
    pub fields: FieldLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_apps: 10_000,
            max_instances_per_app: 10_000,
            max_instances: 200_000,
            max_parked_polls: 20_000,
            fields: FieldLimits::default(),
        }
    }
}
