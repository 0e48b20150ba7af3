//! What a [`Retry`](super::Retry) is told: attempts, time budget and backoff
//! ([`RetryConfig`]), whether a failure is retried ([`Policy`]), and the cross-call
//! [`RetryBudget`].

use std::time::Duration;

use crate::backoff::Backoff;
use crate::error::BoxError;

/// Attempts, budget and backoff of a [`Retry`](super::Retry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Total attempts, the first included (at least 1).
    pub max_attempts: u32,
    /// Total time for all attempts and the waits between them.
    pub timeout: Duration,
    /// Backoff between attempts.
    pub backoff: Backoff,
}

impl Default for RetryConfig {
    /// 3 attempts within 10 s, backoff from 10 ms to 1 s, half jittered.
    fn default() -> Self {
        RetryConfig::new(3, Duration::from_secs(10))
    }
}

impl RetryConfig {
    /// `max_attempts` attempts within `timeout`; backoff from 10 ms to 1 s, half jittered.
    pub fn new(max_attempts: u32, timeout: Duration) -> Self {
        RetryConfig {
            max_attempts: max_attempts.max(1),
            timeout,
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_secs(1)),
        }
    }

    /// Sets the backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// What a [`Policy`] decides after a failed attempt.
#[derive(Debug)]
pub enum Decision {
    /// Try again (if attempts and budget remain).
    Retry,
    /// Give up now; the optional error replaces the last one as the final error.
    Stop(Option<BoxError>),
}

/// Decides whether a failed attempt is retried. Implemented by every
/// `Fn(u32, &BoxError) -> Decision + Send + Sync + 'static` (the attempt number counts from 1).
pub trait Policy: Send + Sync + 'static {
    /// Called after failed attempt number `attempt` (1-based) with its error.
    fn decide(&self, attempt: u32, error: &BoxError) -> Decision;
}

impl<F> Policy for F
where
    F: Fn(u32, &BoxError) -> Decision + Send + Sync + 'static,
{
    fn decide(&self, attempt: u32, error: &BoxError) -> Decision {
        self(attempt, error)
    }
}

/// The default policy: every error is retried.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryAll;

impl Policy for RetryAll {
    fn decide(&self, _attempt: u32, _error: &BoxError) -> Decision {
        Decision::Retry
    }
}

/// Caps retries across calls: told of each call, asked before each retry (Finagle's and
/// linkerd's retry budget is one). Shared by every clone of a [`Retry`](super::Retry).
pub trait RetryBudget: Send + Sync + 'static {
    /// A call (its first attempt) starts.
    fn deposit(&self);
    /// A retry is about to start: `false` refuses it (the retry gives up with
    /// [`GaveUp::Budget`](super::GaveUp::Budget)).
    fn withdraw(&self) -> bool;
    /// An attempt ended (gRPC's token bucket counts successes and failures). Default: nothing.
    fn record(&self, _success: bool) {}
}
