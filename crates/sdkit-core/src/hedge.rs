//! Hedging: when an idempotent request is slow, send a second attempt to another endpoint and
//! take the first answer.
//!
//! A [`Hedge`] decides *when*: after a fixed delay, or after a latency percentile of recent
//! calls (say p95, so about 5 % of requests are hedged). [`race`] runs the primary attempt, starts
//! the hedge once the delay passes (if the caller still may: a hedge counts against the retry
//! budget), returns the first success, and drops the other attempt (which cancels it; its call
//! guard records a cancelled call, not a failure). Opt-in, and only for idempotent requests:
//! [`Retry::with_hedge`](crate::retry::Retry::with_hedge).
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::hedge::{Hedge, HedgeDelay};
//!
//! let hedge = Hedge::new(HedgeDelay::Percentile { percentile: 0.9, min_samples: 10 });
//! assert_eq!(hedge.delay(), None); // too few samples: no hedging yet
//! for ms in 1..=100 {
//!     hedge.record(Duration::from_millis(ms));
//! }
//! let p90 = hedge.delay().unwrap();
//! assert!(p90 >= Duration::from_millis(90) && p90 <= Duration::from_millis(102), "{p90:?}");
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the hedge starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// A fixed delay after the primary attempt started.
    Fixed(Duration),
    /// The latency below which `percentile` (0.0–1.0, e.g. 0.95) of recent calls finished; no
    /// hedging until `min_samples` calls were recorded.
    Percentile {
        /// The percentile, 0.0–1.0.
        percentile: f64,
        /// Calls needed before hedging starts.
        min_samples: u64,
    },
}

/// Sub-buckets per power of two (relative error ≤ 1/8).
const SUB: u32 = 8;
const BUCKETS: usize = 8 * 42;

/// A lock-free log-linear latency histogram (microsecond units, 12.5 % resolution).
struct Histogram {
    buckets: Box<[AtomicU64]>,
}

fn bucket_of(latency: Duration) -> usize {
    let v = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    let i = if v < u64::from(SUB) {
        v as usize
    } else {
        let octave = 63 - v.leading_zeros();
        ((octave - 2) * SUB + ((v >> (octave - 3)) as u32 & (SUB - 1))) as usize
    };
    i.min(BUCKETS - 1)
}

/// The smallest latency of bucket `i` (microseconds).
fn bucket_floor(i: usize) -> u64 {
    let i = i as u64;
    let sub = u64::from(SUB);
    if i < sub {
        i
    } else {
        let octave = i / sub + 2;
        (sub + i % sub) << (octave - 3)
    }
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn clear(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
    }
}

/// When to hedge, learned from recent latencies. Share it (`Arc`) between the clones of a
/// client. See the [module docs](self).
pub struct Hedge {
    delay: HedgeDelay,
    /// Two windows: recording goes to `windows[current]`; percentiles read both.
    windows: [Histogram; 2],
    current: AtomicU64,
    rotated: Mutex<Instant>,
    period: Duration,
}

impl fmt::Debug for Hedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("delay", &self.delay)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Hedge {
    /// Hedges per `delay`; percentiles cover the last 10 to 20 seconds of calls.
    pub fn new(delay: HedgeDelay) -> Self {
        Self::with_period(delay, Duration::from_secs(10))
    }

    /// Like [`new`](Self::new), with latencies forgotten after one to two `period`s.
    pub fn with_period(delay: HedgeDelay, period: Duration) -> Self {
        Hedge {
            delay,
            windows: [Histogram::new(), Histogram::new()],
            current: AtomicU64::new(0),
            rotated: Mutex::new(Instant::now()),
            period: period.max(Duration::from_millis(1)),
        }
    }

    /// The configured delay rule.
    pub fn rule(&self) -> HedgeDelay {
        self.delay
    }

    /// Records the latency of one successful call.
    pub fn record(&self, latency: Duration) {
        if let HedgeDelay::Fixed(_) = self.delay {
            return;
        }
        self.rotate(Instant::now());
        let w = (self.current.load(Ordering::Relaxed) & 1) as usize;
        self.windows[w].buckets[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
    }

    fn rotate(&self, now: Instant) {
        let Ok(mut last) = self.rotated.try_lock() else {
            return;
        };
        if now.saturating_duration_since(*last) < self.period {
            return;
        }
        *last = now;
        let next = self.current.load(Ordering::Relaxed).wrapping_add(1);
        self.windows[(next & 1) as usize].clear();
        self.current.store(next, Ordering::Relaxed);
    }

    /// How long to wait before hedging, or `None` (not enough samples yet).
    pub fn delay(&self) -> Option<Duration> {
        match self.delay {
            HedgeDelay::Fixed(delay) => Some(delay),
            HedgeDelay::Percentile {
                percentile,
                min_samples,
            } => {
                let counts: Vec<u64> = (0..BUCKETS)
                    .map(|i| {
                        self.windows[0].buckets[i].load(Ordering::Relaxed)
                            + self.windows[1].buckets[i].load(Ordering::Relaxed)
                    })
                    .collect();
                let total: u64 = counts.iter().sum();
                if total == 0 || total < min_samples {
                    return None;
                }
                let rank = ((total as f64 * percentile.clamp(0.0, 1.0)).ceil() as u64).max(1);
                let mut seen = 0;
                for (i, count) in counts.iter().enumerate() {
                    seen += count;
                    if seen >= rank {
                        // The bucket's upper edge: never hedge earlier than the percentile.
                        return Some(Duration::from_micros(bucket_floor(i + 1)));
                    }
                }
                None
            }
        }
    }
}

/// Races `primary` against a hedge started after `delay` (if `hedge()` then gives one: it
/// returns `None` when the budget refuses or no other endpoint exists). The first `Ok` wins
/// and the other attempt is dropped (cancelled); if one attempt fails, the other is awaited;
/// if both fail, the primary's error is returned. Also returns whether a hedge was sent.
///
/// ```
/// use std::time::Duration;
/// use sdkit_core::hedge::race;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slow = async { tokio::time::sleep(Duration::from_secs(5)).await; Ok::<_, ()>("slow") };
/// let fast = || Some(async { Ok::<_, ()>("hedge") });
/// let (answer, hedged) = race(slow, Some(Duration::from_millis(10)), fast).await;
/// assert_eq!((answer, hedged), (Ok("hedge"), true));
/// # }
/// ```
pub async fn race<T, E, P, H, F>(
    primary: P,
    delay: Option<Duration>,
    hedge: H,
) -> (Result<T, E>, bool)
where
    P: Future<Output = Result<T, E>>,
    H: FnOnce() -> Option<F>,
    F: Future<Output = Result<T, E>>,
{
    let Some(delay) = delay else {
        return (primary.await, false);
    };
    tokio::pin!(primary);
    tokio::select! {
        result = &mut primary => return (result, false),
        () = tokio::time::sleep(delay) => {}
    }
    let Some(second) = hedge() else {
        return (primary.await, false);
    };
    tokio::pin!(second);
    let mut primary_failed: Option<Result<T, E>> = None;
    let mut second_failed = false;
    // Each arm returns once the answer is known, so both are never disabled at once.
    loop {
        tokio::select! {
            result = &mut primary, if primary_failed.is_none() => {
                if result.is_ok() || second_failed {
                    return (result, true);
                }
                primary_failed = Some(result);
            }
            result = &mut second, if !second_failed => {
                if result.is_ok() {
                    return (result, true);
                }
                if let Some(primary_error) = primary_failed.take() {
                    return (primary_error, true);
                }
                second_failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for us in (0..5_000_000u64).step_by(997) {
            let i = bucket_of(Duration::from_micros(us));
            assert!(i >= last);
            last = i;
            assert!(
                bucket_floor(i) <= us && us < bucket_floor(i + 1),
                "{us}µs in {i}"
            );
            let width = bucket_floor(i + 1) - bucket_floor(i);
            assert!(width <= 1.max(us / 8 + 1), "{us}µs: width {width}");
        }
    }
}
