//! What an update leaves behind — the superseded endpoints and instance snapshot to drop, the
//! ready gauge to count — and the [`Reclaimer`] that disposes of it.
//!
//! Dropping a set of thousands frees memory for every item, and counting its ready endpoints
//! reads every state: for large sets both run on Tokio's blocking pool, so that neither the
//! endpointer's next update nor the pickers' tasks wait for them. One endpointer keeps at most one
//! blocking thread busy: leftovers that arrive while an earlier batch is still being dropped
//! queue behind it instead of starting a thread of their own, so a registry that changes faster
//! than its sets can be freed does not spread the frees over every core (nor pay a thread wake-up
//! per update). The queue is bounded: past [`MAX_QUEUED`] waiting batches the endpointer frees
//! the set itself, which slows its updates down to what it can free (the instancer's watch
//! channel keeps only the newest snapshot meanwhile), so memory stays bounded.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::Snapshot;
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::feedback::state::any_not_ready;
use crate::metrics::EndpointerMetrics;

/// Leftovers with at least this many items (endpoints, instances and endpoints to count) are
/// disposed of off the endpointer's task.
const RECLAIM_OFF_TASK: usize = 1024;

/// Batches that may wait behind the one being disposed of before the endpointer disposes of
/// its leftovers itself.
const MAX_QUEUED: usize = 4;

/// What one update leaves to do once its set is published.
pub(super) struct Leftovers<S> {
    /// The superseded endpoint set.
    pub(super) endpoints: Option<Arc<Endpoints<S>>>,
    /// The superseded instance snapshot.
    pub(super) snapshot: Option<Arc<Snapshot>>,
    /// The ready gauge to count.
    pub(super) count: Option<CountReady<S>>,
}

/// Counts the ready endpoints of `current` into the gauge, unless a newer set was published.
pub(super) struct CountReady<S> {
    pub(super) current: Arc<Endpoints<S>>,
    pub(super) set: EndpointSet<S>,
    pub(super) metrics: EndpointerMetrics,
}

impl<S> Leftovers<S> {
    /// Nothing left yet.
    pub(super) fn new() -> Self {
        Leftovers {
            endpoints: None,
            snapshot: None,
            count: None,
        }
    }

    fn items(&self) -> usize {
        self.endpoints.as_ref().map_or(0, |e| e.len())
            + self.snapshot.as_ref().map_or(0, |s| s.len())
            + self.count.as_ref().map_or(0, |c| c.current.len())
    }

    fn finish(self) {
        let Leftovers {
            endpoints,
            snapshot,
            count,
        } = self;
        drop(endpoints);
        drop(snapshot);
        if let Some(CountReady {
            current,
            set,
            metrics,
        }) = count
        {
            // While every endpoint in the process is ready (one load), so are these.
            let ready = if any_not_ready() {
                current.iter().filter(|e| e.state().is_ready()).count()
            } else {
                current.len()
            };
            if Arc::ptr_eq(&set.load(), &current) {
                metrics.ready(ready);
            }
        }
    }
}

/// Disposes of one endpointer's leftovers: small ones at once, large ones in order on one
/// blocking thread at a time.
pub(super) struct Reclaimer<S> {
    queue: Arc<Mutex<Queue<S>>>,
}

struct Queue<S> {
    pending: Vec<Leftovers<S>>,
    /// A blocking task is draining `pending` (it clears this when it finds it empty).
    draining: bool,
}

impl<S: Send + Sync + 'static> Reclaimer<S> {
    pub(super) fn new() -> Self {
        Reclaimer {
            queue: Arc::new(Mutex::new(Queue {
                pending: Vec::new(),
                draining: false,
            })),
        }
    }

    /// Disposes of `leftovers`: here when small, outside a runtime or when [`MAX_QUEUED`]
    /// batches already wait; else behind any batch still being disposed of, on the blocking
    /// pool.
    pub(super) fn release(&self, leftovers: Leftovers<S>) {
        if leftovers.items() < RECLAIM_OFF_TASK {
            return leftovers.finish();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return leftovers.finish();
        };
        {
            let mut queue = lock(&self.queue);
            if queue.draining && queue.pending.len() >= MAX_QUEUED {
                drop(queue);
                return leftovers.finish();
            }
            queue.pending.push(leftovers);
            if queue.draining {
                return;
            }
            queue.draining = true;
        }
        let queue = Arc::clone(&self.queue);
        drop(runtime.spawn_blocking(move || drain(&queue)));
    }
}

/// Disposes of the queued leftovers, oldest first, until none is left. A drop that panics (a
/// service's own `Drop`) is reported by the panic hook and ends only its own item: the queue
/// behind it is still disposed of.
fn drain<S>(queue: &Mutex<Queue<S>>) {
    loop {
        let batch = {
            let mut queue = lock(queue);
            if queue.pending.is_empty() {
                queue.draining = false;
                return;
            }
            std::mem::take(&mut queue.pending)
        };
        for leftovers in batch {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| leftovers.finish()));
        }
    }
}

fn lock<S>(queue: &Mutex<Queue<S>>) -> MutexGuard<'_, Queue<S>> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Instance;
    use crate::endpoint::Endpoint;

    /// Counts its drops; the one holding a gate waits for it to open first.
    struct Svc {
        dropped: Arc<AtomicUsize>,
        gate: Option<Mutex<mpsc::Receiver<()>>>,
    }

    impl Drop for Svc {
        fn drop(&mut self) {
            if let Some(gate) = &self.gate {
                let _ = gate.lock().unwrap().recv();
            }
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Spins until `condition` holds (the drain is a blocking thread: there is no runtime to
    /// await on); panics naming `what` after 30 s.
    fn spin_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !condition() {
            assert!(Instant::now() < deadline, "not within 30 s: {what}");
            std::thread::yield_now();
        }
    }

    /// Leftovers of `n` endpoints, the last of them holding `gate`.
    fn leftovers(
        n: usize,
        dropped: &Arc<AtomicUsize>,
        gate: Option<mpsc::Receiver<()>>,
    ) -> Leftovers<Svc> {
        let mut gate = gate.map(Mutex::new);
        let items = (0..n)
            .map(|i| {
                let svc = Svc {
                    dropped: Arc::clone(dropped),
                    gate: if i + 1 == n { gate.take() } else { None },
                };
                Endpoint::new(
                    Instance::from_addr(format!("10.0.{}.{}:80", i / 250, i % 250)),
                    svc,
                )
            })
            .collect();
        let mut leftovers = Leftovers::new();
        leftovers.endpoints = Some(Arc::new(Endpoints::new(items, None)));
        leftovers
    }

    #[test]
    fn batches_past_the_bound_are_disposed_of_by_the_caller() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let reclaimer = Reclaimer::new();
        let n = RECLAIM_OFF_TASK;
        // The first batch holds the drain until the gate opens.
        let (open, gate) = mpsc::channel();
        let first = Arc::new(AtomicUsize::new(0));
        reclaimer.release(leftovers(n, &first, Some(gate)));
        // Wait for the drain to take it (and block on the gate).
        spin_until("the drain took the first batch", || {
            lock(&reclaimer.queue).pending.is_empty()
        });
        // The next ones: MAX_QUEUED wait, the rest are disposed of right here.
        let later: Vec<Arc<AtomicUsize>> = (0..MAX_QUEUED + 3).map(|_| Arc::default()).collect();
        for dropped in &later {
            reclaimer.release(leftovers(n, dropped, None));
        }
        let inline = later
            .iter()
            .filter(|d| d.load(Ordering::SeqCst) == n)
            .count();
        assert_eq!(inline, 3, "batches past the bound are disposed of at once");
        // Open the gate: the drain disposes of the first batch and every queued one.
        open.send(()).unwrap();
        spin_until("every queued batch disposed of", || {
            let all_dropped = first.load(Ordering::SeqCst) == n
                && later.iter().all(|d| d.load(Ordering::SeqCst) == n);
            all_dropped && !lock(&reclaimer.queue).draining
        });
        assert!(lock(&reclaimer.queue).pending.is_empty());
    }
}
