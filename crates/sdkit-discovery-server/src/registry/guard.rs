//! Self-preservation: stop evicting when renews dry up everywhere at once.
//!
//! If far fewer renews arrive than the live instances should send, the likelier cause is a
//! network problem between the clients and this node, not that they all died; evicting them
//! would empty the registry. The reference counts +2/-2 expected renews per minute and resets
//! every 15 min; here the expectation is derived at each check from the live count.
//!
//! Only the first renew of each instance in a window counts, worth the renews one instance
//! is expected to send per window (`evict_interval / renew_interval`): a client renewing in
//! a loop counts as one healthy instance, not as the whole fleet, so it cannot hold
//! self-preservation off while the others are gone.

use crate::config::Lease;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Renew counter and the protection flag.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Instances renewed in the current window.
    renewed: AtomicU64,
    /// When the current window opened (server clock).
    window_start: AtomicI64,
    protected: AtomicBool,
}

impl Guard {
    /// A guard whose first window opens at `now`.
    pub(crate) fn new(now: i64) -> Guard {
        Guard {
            renewed: AtomicU64::new(0),
            window_start: AtomicI64::new(now),
            protected: AtomicBool::new(false),
        }
    }

    /// Counts a renew of an instance last renewed at `prev`: only its first in this window.
    pub(crate) fn count_renew(&self, prev: i64) {
        if prev < self.window_start.load(Ordering::Relaxed) {
            self.renewed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the current window at `now` with `live` renewing instances; returns whether
    /// eviction must be restrained.
    pub(crate) fn tick(&self, now: i64, live: usize, lease: &Lease) -> bool {
        self.window_start.fetch_max(now, Ordering::Relaxed);
        let renews = self
            .renewed
            .swap(0, Ordering::Relaxed)
            .saturating_mul(per_instance(lease));
        let protected = lease.self_preservation && renews < threshold(live, lease);
        self.protected.store(protected, Ordering::Relaxed);
        protected
    }

    /// Whether the last check restrained eviction.
    pub(crate) fn is_protected(&self) -> bool {
        self.protected.load(Ordering::Relaxed)
    }
}

/// Renews one instance is expected to send per window, at least 1.
fn per_instance(lease: &Lease) -> u64 {
    (lease.evict_interval.as_secs_f64() / lease.renew_interval.as_secs_f64().max(1e-9))
        .round()
        .max(1.0) as u64
}

/// `floor(live × evict_interval / renew_interval × ratio)`.
pub(crate) fn threshold(live: usize, lease: &Lease) -> u64 {
    let per_instance =
        lease.evict_interval.as_secs_f64() / lease.renew_interval.as_secs_f64().max(1e-9);
    (live as f64 * per_instance * lease.preservation_ratio).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_cases() {
        let lease = Lease::default();
        // guard_test.go: setExp(10) → exp 20, threshold 17.
        assert_eq!(threshold(10, &lease), 17);
        let g = Guard::new(100);
        // Two instances (exp 4, threshold 3), one renewed (worth 2) → protected.
        g.count_renew(0);
        assert!(g.tick(200, 2, &lease));
        // One instance (exp 2, threshold 1), one renew → not protected.
        g.count_renew(150);
        assert!(!g.tick(300, 1, &lease));
        // TestEvict: one instance, no renews → protected.
        assert!(g.tick(400, 1, &lease));
        assert!(!g.tick(
            500,
            1,
            &Lease {
                self_preservation: false,
                ..lease
            }
        ));
    }

    #[test]
    fn a_renew_loop_counts_once_per_window() {
        let lease = Lease::default();
        let g = Guard::new(1_000);
        // Ten instances, only one alive, renewing in a loop: its first renew counts, the
        // rest were renewed inside the window already.
        g.count_renew(500);
        for t in 1_001..2_000 {
            g.count_renew(t);
        }
        assert!(
            g.tick(2_000, 10, &lease),
            "one looping client: still protected"
        );
        // Next window: every instance renews once → not protected.
        for _ in 0..10 {
            g.count_renew(1_500);
        }
        assert!(!g.tick(3_000, 10, &lease));
    }
}
