//! Retry budgets shared by all requests of a client: Finagle's (and linkerd's) time-windowed
//! budget, and gRPC's `retryThrottling` token bucket.
//!
//! A retry budget stops a retry storm: when an endpoint set degrades, retries multiply the load
//! exactly when it hurts most. A budget allows retries in proportion to the traffic, plus a
//! small floor, and refuses the rest (the call then fails with its last error).
//!
//! * [`TpsBudget`] (Finagle's `RetryBudget`): over a sliding window (10 s), retries may add up
//!   to a percentage (20 %) of the requests, plus a reserve of `min_per_sec × window`
//!   (10/s) so that a quiet client can still retry.
//! * [`TokenBucket`] (gRPC's `retryThrottling`, A6): `max_tokens` tokens; each failed attempt
//!   takes one, each success gives back `token_ratio`; retries (and hedges) are allowed only
//!   while more than half the tokens remain.
//!
//! Both are cheap to share (`Arc`) and take the current time as an argument in their `*_at`
//! forms, so their behaviour is testable without a clock.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sdkit_core::retry_budget::TpsBudget;
//!
//! let budget = TpsBudget::new(Duration::from_secs(10), 0, 0.2);
//! let now = Instant::now();
//! for _ in 0..10 {
//!     budget.deposit_at(now); // ten requests
//! }
//! assert!(budget.withdraw_at(now) && budget.withdraw_at(now)); // 20 % of them may retry
//! assert!(!budget.withdraw_at(now));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Slots of a [`TpsBudget`] window.
const SLOTS: usize = 10;

/// Finagle's retry budget: retries may add `percent` of the requests of the last `ttl`, plus a
/// reserve of `min_per_sec × ttl`. See the [module docs](self).
pub struct TpsBudget {
    slot_len: Duration,
    /// Units a request deposits and a retry withdraws (integers: `percent` = deposit/withdraw).
    deposit: i64,
    withdraw: i64,
    reserve: i64,
    window: Mutex<Window>,
}

struct Window {
    origin: Instant,
    /// `(slot number, net units)`; a slot whose number is not current-window is stale.
    slots: [(u64, i64); SLOTS],
}

impl Default for TpsBudget {
    /// Finagle's defaults: a 10 s window, 10 retries per second minimum, 20 % of requests.
    fn default() -> Self {
        TpsBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl fmt::Debug for TpsBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpsBudget")
            .field("window", &(self.slot_len * SLOTS as u32))
            .field("deposit", &self.deposit)
            .field("withdraw", &self.withdraw)
            .field("reserve", &self.reserve)
            .finish()
    }
}

impl TpsBudget {
    /// Retries may add `percent` (0.0–1000.0; 0.2 = 20 %) of the requests made in the last
    /// `ttl` (1 s–60 s), plus `min_per_sec` per second.
    pub fn new(ttl: Duration, min_per_sec: u32, percent: f64) -> Self {
        let ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let percent = if percent.is_finite() {
            percent.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        // Integer units: a request deposits `deposit`, a retry withdraws `withdraw`.
        let (deposit, withdraw) = if percent == 0.0 {
            (0, 1)
        } else {
            (1000, ((1000.0 / percent).round() as i64).max(1))
        };
        let reserve = i64::from(min_per_sec)
            .saturating_mul(ttl.as_secs() as i64)
            .saturating_mul(withdraw);
        TpsBudget {
            slot_len: ttl / SLOTS as u32,
            deposit,
            withdraw,
            reserve,
            window: Mutex::new(Window {
                origin: Instant::now(),
                slots: [(u64::MAX, 0); SLOTS],
            }),
        }
    }

    fn slot_number(&self, window: &Window, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(window.origin).as_nanos();
        (elapsed / self.slot_len.as_nanos().max(1)) as u64
    }

    fn add(&self, window: &mut Window, now: Instant, units: i64) {
        let n = self.slot_number(window, now);
        let slot = &mut window.slots[(n % SLOTS as u64) as usize];
        if slot.0 != n {
            *slot = (n, 0);
        }
        slot.1 += units;
    }

    fn balance_in(&self, window: &Window, now: Instant) -> i64 {
        let n = self.slot_number(window, now);
        let live = |slot: u64| slot != u64::MAX && slot <= n && n - slot < SLOTS as u64;
        self.reserve
            + window
                .slots
                .iter()
                .filter(|(slot, _)| live(*slot))
                .map(|(_, units)| units)
                .sum::<i64>()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request starts at `now`.
    pub fn deposit_at(&self, now: Instant) {
        if self.deposit != 0 {
            let mut window = self.lock();
            self.add(&mut window, now, self.deposit);
        }
    }

    /// A retry wants to start at `now`: `true` (and the retry is counted) when the budget
    /// allows it.
    pub fn withdraw_at(&self, now: Instant) -> bool {
        let mut window = self.lock();
        if self.balance_in(&window, now) < self.withdraw {
            return false;
        }
        self.add(&mut window, now, -self.withdraw);
        true
    }

    /// How many retries the budget would allow at `now`.
    pub fn available_at(&self, now: Instant) -> u64 {
        let window = self.lock();
        (self.balance_in(&window, now).max(0) / self.withdraw) as u64
    }

    /// A request starts now.
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// A retry wants to start now; see [`withdraw_at`](Self::withdraw_at).
    pub fn withdraw(&self) -> bool {
        self.withdraw_at(Instant::now())
    }
}

/// gRPC's `retryThrottling` token bucket (A6). See the [module docs](self).
///
/// ```
/// use sdkit_core::retry_budget::TokenBucket;
///
/// let bucket = TokenBucket::new(10, 0.1);
/// assert!(bucket.allows_retry());
/// for _ in 0..5 {
///     bucket.on_failure();
/// }
/// // 5 of 10 tokens left: not more than half, so no retry.
/// assert!(!bucket.allows_retry());
/// for _ in 0..10 {
///     bucket.on_success();
/// }
/// assert!(bucket.allows_retry()); // 6 tokens
/// ```
#[derive(Debug)]
pub struct TokenBucket {
    /// Thousandths of a token.
    tokens: AtomicU64,
    max: u64,
    ratio: u64,
}

impl TokenBucket {
    /// A full bucket of `max_tokens` (1–1000); each success gives back `token_ratio` tokens
    /// (0.001–1000, three decimals as gRPC keeps).
    pub fn new(max_tokens: u32, token_ratio: f64) -> Self {
        let max = u64::from(max_tokens.clamp(1, 1000)) * 1000;
        let ratio = if token_ratio.is_finite() {
            (token_ratio.clamp(0.001, 1000.0) * 1000.0).round() as u64
        } else {
            1
        };
        TokenBucket {
            tokens: AtomicU64::new(max),
            max,
            ratio,
        }
    }

    /// Tokens left (fractional).
    pub fn tokens(&self) -> f64 {
        self.tokens.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// A call or attempt failed: one token less.
    pub fn on_failure(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(1000))
            });
    }

    /// A call or attempt succeeded: `token_ratio` tokens back, up to the maximum.
    pub fn on_success(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t + self.ratio).min(self.max))
            });
    }

    /// Retries and hedges are allowed while more than half the tokens remain.
    pub fn allows_retry(&self) -> bool {
        self.tokens.load(Ordering::Relaxed) > self.max / 2
    }
}

impl crate::retry::RetryBudget for TpsBudget {
    fn deposit(&self) {
        TpsBudget::deposit(self);
    }

    fn withdraw(&self) -> bool {
        TpsBudget::withdraw(self)
    }
}

/// gRPC's rules: each failed attempt takes a token, each success gives `token_ratio` back, and
/// a retry (or hedge) goes only while more than half the tokens remain.
impl crate::retry::RetryBudget for TokenBucket {
    fn deposit(&self) {}

    fn withdraw(&self) -> bool {
        self.allows_retry()
    }

    fn record(&self, success: bool) {
        if success {
            self.on_success();
        } else {
            self.on_failure();
        }
    }
}
