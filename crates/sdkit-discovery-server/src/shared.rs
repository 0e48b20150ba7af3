//! State shared by the accept loop, every connection, the handlers and the lease task.
//!
//! This module sits below `http` and `server`: handlers and the lease task read it, the
//! server builds it, and nothing here reaches back up.

use crate::answers::{Answers, WholeAnswer};
use crate::budget::Budget;
use crate::config::Config;
use crate::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Counters the handlers, connections and the lease task update.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Parked long-poll requests.
    pub(crate) parked: AtomicUsize,
    /// Lease checks run.
    pub(crate) lease_checks: AtomicU64,
    /// Instances evicted.
    pub(crate) evicted: AtomicU64,
    /// Tasks the server owns that are still alive (lease task and connections).
    pub(crate) tasks: AtomicUsize,
    /// Connections refused by a connection limit.
    pub(crate) refused_connections: AtomicU64,
}

/// State shared by the accept loop, every connection and the lease task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) shutdown: CancellationToken,
    pub(crate) stats: Counters,
    pub(crate) addr: OnceLock<SocketAddr>,
    pub(crate) answers: Answers,
    /// The shared `fetch/all` answer.
    pub(crate) all: WholeAnswer,
    /// Parked-poll budget, in change topics, in total and per client address.
    pub(crate) parked: Arc<Budget>,
    /// Open connections, in total and per client address.
    pub(crate) connections: Arc<Budget>,
    pub(crate) protect_until: OnceLock<Instant>,
    /// Requests answered, by route and code (the metrics listener shows them).
    pub(crate) requests: crate::requests::Requests,
}

impl Shared {
    /// Shared state for `config`, not yet serving.
    pub(crate) fn new(config: Config) -> Shared {
        let limits = &config.limits;
        Shared {
            registry: Registry::new(config.env.clone(), limits.clone()),
            shutdown: CancellationToken::new(),
            stats: Counters::default(),
            addr: OnceLock::new(),
            answers: Answers::new(limits.max_answer_cache_bytes),
            all: WholeAnswer::default(),
            parked: Arc::new(Budget::new(
                "parked polls (one unit per appid listened to)",
                limits.max_parked_polls,
                limits.max_parked_polls_per_addr,
            )),
            connections: Arc::new(Budget::new(
                "connections",
                limits.max_connections,
                limits.max_connections_per_addr,
            )),
            protect_until: OnceLock::new(),
            requests: crate::requests::Requests::default(),
            config,
        }
    }

    /// Whether protect mode is on (reads answer -500).
    pub(crate) fn is_protected(&self) -> bool {
        self.protect_until
            .get()
            .is_some_and(|until| Instant::now() < *until)
    }
}

/// Counts one owned task alive while held (see [`Counters::tasks`]).
#[derive(Debug)]
pub(crate) struct TaskGuard(Arc<Shared>);

impl TaskGuard {
    pub(crate) fn new(shared: &Arc<Shared>) -> TaskGuard {
        shared
            .stats
            .tasks
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        TaskGuard(Arc::clone(shared))
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0
            .stats
            .tasks
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
