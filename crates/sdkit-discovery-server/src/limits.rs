//! Bounds on request sizes and on registry state.
//!
//! Worst-case memory is bounded by `max_instances` × the largest instance the field limits
//! allow (≈ 13 KiB with the defaults), plus `max_parked_polls` parked topics, the answer
//! cache (`max_answer_cache_bytes`) and the connections (`max_connections`). The defaults fit
//! a registry of 100 000 instances on a small machine (see `docs/discovery-server.md`).

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
    /// Most change topics listened to by parked `poll`/`polls` requests together: a `polls`
    /// of n appids costs n (default 50 000).
    pub max_parked_polls: usize,
    /// Most parked-poll topics from one client address (default 5 000).
    pub max_parked_polls_per_addr: usize,
    /// Most open connections (default 10 000; mind the process's file descriptor limit).
    pub max_connections: usize,
    /// Most open connections from one client address (default 1 000).
    pub max_connections_per_addr: usize,
    /// Most metadata keys of one instance, after a `set` merge too (default 64).
    pub max_metadata_keys: usize,
    /// Largest `fetch/all` or `fetchs` answer (default 128 MiB, about 300 000 instances).
    pub max_answer_bytes: usize,
    /// Most bytes held by the table of shared long-poll answers (default 64 MiB).
    pub max_answer_cache_bytes: usize,
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
            max_parked_polls: 50_000,
            max_parked_polls_per_addr: 5_000,
            max_connections: 10_000,
            max_connections_per_addr: 1_000,
            max_metadata_keys: 64,
            max_answer_bytes: 128 << 20,
            max_answer_cache_bytes: 64 << 20,
            fields: FieldLimits::default(),
        }
    }
}
