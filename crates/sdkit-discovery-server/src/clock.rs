//! The server's clock: wall-clock time as Go `UnixNano` (i64 nanoseconds), the unit of every
//! wire timestamp, never going backwards.
//!
//! Every timestamp the registry stores comes from here; client-supplied timestamps are
//! ignored (or, from a trusted peer, clamped to [`Clock::ceiling`]), so no cursor can be
//! pushed beyond the server's clock plus [`SKEW`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far ahead of the server's clock a cursor may run: cursors move by at least 1 ns per
/// change, so a burst of changes within one clock tick runs slightly ahead.
pub(crate) const SKEW: Duration = Duration::from_secs(1);

/// Nanoseconds since the Unix epoch (0 before it, saturating far after it).
pub(crate) fn wall_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A monotonic wall clock: never returns less than it returned before.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    last: AtomicI64,
}

impl Clock {
    /// Now, in Unix nanoseconds; not below any earlier reading.
    pub(crate) fn now(&self) -> i64 {
        let wall = wall_nanos();
        let prev = self.last.fetch_max(wall, Ordering::AcqRel);
        prev.max(wall)
    }

    /// The latest timestamp accepted from anyone: now + [`SKEW`].
    pub(crate) fn ceiling(&self) -> i64 {
        self.now().saturating_add(nanos(SKEW))
    }
}

/// A duration in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_and_the_ceiling_is_near() {
        let c = Clock::default();
        let mut last = 0;
        for _ in 0..1000 {
            let t = c.now();
            assert!(t >= last);
            last = t;
        }
        c.last.store(i64::MAX - 5, Ordering::Relaxed);
        assert_eq!(c.now(), i64::MAX - 5);
        assert_eq!(c.ceiling(), i64::MAX);
        let fresh = Clock::default();
        assert!(fresh.ceiling() - fresh.now() <= nanos(SKEW));
    }
}
