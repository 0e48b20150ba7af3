//! How a [`Retry`](super::Retry) gives up: [`RetryError`] keeps every attempt's error and
//! says why ([`GaveUp`]).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::error::BoxError;

/// Why a [`Retry`](super::Retry) gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GaveUp {
    /// Every allowed attempt failed.
    MaxAttempts,
    /// The time budget ran out.
    Timeout,
    /// The policy stopped.
    Policy,
    /// The [`RetryBudget`](super::RetryBudget) refused a retry.
    Budget,
    /// No endpoint has been ready for the fail-fast time
    /// ([`Retry::with_fail_fast`](super::Retry::with_fail_fast)).
    FailFast,
}

/// An attempt was cut short because the retry budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("attempt cut short: the retry budget of {budget:?} ran out")]
pub struct BudgetExhausted {
    /// The total budget.
    pub budget: Duration,
}

/// The error of a [`Retry`](super::Retry) that gave up: every attempt's error, in order, and
/// why it stopped.
#[derive(Debug)]
pub struct RetryError {
    pub(super) errors: Vec<BoxError>,
    pub(super) reason: GaveUp,
    pub(super) replacement: Option<BoxError>,
    pub(super) budget: Duration,
}

impl RetryError {
    /// Each attempt's error, in order (an attempt cut short by the budget has a
    /// [`BudgetExhausted`] error).
    pub fn errors(&self) -> &[BoxError] {
        &self.errors
    }

    /// Why the retry stopped.
    pub fn reason(&self) -> GaveUp {
        self.reason
    }

    /// The final error: the policy's replacement if it gave one, else the last attempt's error.
    pub fn final_error(&self) -> Option<&BoxError> {
        self.replacement.as_ref().or(self.errors.last())
    }

    /// Takes the attempts' errors out.
    pub fn into_errors(self) -> Vec<BoxError> {
        self.errors
    }
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        match self.reason {
            GaveUp::MaxAttempts => write!(f, "all {n} attempts failed")?,
            GaveUp::Timeout => write!(
                f,
                "retry budget of {:?} ran out after {n} attempt(s)",
                self.budget
            )?,
            GaveUp::Policy => write!(f, "retry stopped by policy after {n} attempt(s)")?,
            GaveUp::Budget => write!(f, "retry budget refused a retry after {n} attempt(s)")?,
            GaveUp::FailFast => write!(f, "failing fast after {n} attempt(s)")?,
        }
        match self.final_error() {
            Some(last) => write!(f, "; last error: {last}"),
            None => Ok(()),
        }
    }
}

impl StdError for RetryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.final_error()
            .map(|e| &**e as &(dyn StdError + 'static))
    }
}
