//! Self-preservation: stop evicting when renews dry up everywhere at once.
//!
//! If far fewer renews arrive than the live instances should send, the likelier cause is a
//! network problem between the clients and this node, not that they all died; evicting them
//! would empty the registry. The reference counts +2/-2 expected renews per minute and resets
//! every 15 min; here the expectation is derived at each check from the live count.

use crate::config::Lease;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Renew counter and the protection flag.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    renews: AtomicU64,
    protected: AtomicBool,
}

impl Guard {
    /// Counts one renew (client or replicated).
    pub(crate) fn count_renew(&self) {
        self.renews.fetch_add(1, Ordering::Relaxed);
    }

    /// Closes the current window with `live` renewing instances; returns whether eviction
    /// must be restrained.
    pub(crate) fn tick(&self, live: usize, lease: &Lease) -> bool {
        let renews = self.renews.swap(0, Ordering::Relaxed);
        let protected = lease.self_preservation && renews < threshold(live, lease);
        self.protected.store(protected, Ordering::Relaxed);
        protected
    }

    /// Whether the last check restrained eviction.
    pub(crate) fn is_protected(&self) -> bool {
        self.protected.load(Ordering::Relaxed)
    }
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
        let g = Guard::default();
        // Two instances (exp 4, threshold 3), one renew → protected.
        g.count_renew();
        assert!(g.tick(2, &lease));
        // One instance (exp 2, threshold 1), one renew → not protected.
        g.count_renew();
        assert!(!g.tick(1, &lease));
        // TestEvict: one instance, no renews → protected.
        assert!(g.tick(1, &lease));
        assert!(!g.tick(
            1,
            &Lease {
                self_preservation: false,
                ..lease
            }
        ));
    }
}
