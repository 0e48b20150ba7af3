//! Owned background tasks: the mechanics every backend's watch loop shares.
//!
//! * [`BoxFuture`]: the boxed future the object-safe traits return.
//! * [`sleep_or_cancel`]: a sleep that ends early when the owner stops.
//! * [`OwnedTask`]: a spawned task with its [`CancellationToken`]; stopping it is the one
//!   "cancel, take the task, abort" sequence (idempotent), and dropping the owner stops it.
//! * [`FailureLoop`]: what a watch loop does after a failed round — next backoff delay, a
//!   warning with the same fields in every backend, an error event published (subscribers keep
//!   the last good set), then sleep unless cancelled.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::task::FailureLoop;
//! use sdkit_core::{Backoff, CancellationToken, InstanceCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = InstanceCache::new();
//! let token = CancellationToken::new();
//! let mut failures = FailureLoop::new("example", "web", Backoff::new(Duration::from_millis(1), Duration::from_millis(2)));
//! // A round failed: warn, publish the error, wait; `false` would mean "stopped".
//! assert!(failures.fail(&cache, &token, "registry unreachable").await);
//! assert_eq!(failures.failures(), 1);
//! failures.success();
//! assert_eq!(failures.failures(), 0);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, BackoffState};
use crate::cache::InstanceCache;
use crate::error::BoxError;
use crate::event::SourceError;

/// A boxed, `Send` future: what the object-safe traits of sdkit return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sleeps for `duration` unless `token` fires first; returns `false` when cancelled.
///
/// ```
/// use std::time::Duration;
/// use sdkit_core::{CancellationToken, task::sleep_or_cancel};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let token = CancellationToken::new();
/// token.cancel();
/// assert!(!sleep_or_cancel(&token, Duration::from_secs(3600)).await);
/// # }
/// ```
pub async fn sleep_or_cancel(token: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

/// A spawned task and the token that asks it to stop. See the [module docs](self).
///
/// ```
/// use sdkit_core::task::OwnedTask;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let task = OwnedTask::spawn("example", |token| async move { token.cancelled().await });
/// assert!(!task.is_stopped());
/// task.stop();
/// task.stop(); // idempotent
/// assert!(task.is_stopped());
/// # }
/// ```
#[derive(Debug)]
pub struct OwnedTask {
    token: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OwnedTask {
    /// Spawns `run(token)` on the current Tokio runtime; `name` labels its end in the logs.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn spawn<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let token = CancellationToken::new();
        let fut = run(token.clone());
        let task = tokio::spawn(async move {
            fut.await;
            tracing::debug!(task = name, "background task ended");
        });
        OwnedTask {
            token,
            task: Mutex::new(Some(task)),
        }
    }

    /// The token the task watches.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Cancels the token, takes the task and aborts it: in-flight I/O ends at once. Returns
    /// `true` the first time (the caller then closes what the task published into).
    pub fn stop(&self) -> bool {
        self.token.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match task {
            Some(task) => {
                task.abort();
                true
            }
            None => false,
        }
    }

    /// `true` once stopped.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The failure half of a watch loop, the same in every backend. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct FailureLoop {
    backend: &'static str,
    subject: String,
    backoff: BackoffState,
}

impl FailureLoop {
    /// A loop for `backend` watching `subject` (the service, prefix or name: both appear in
    /// its warnings), retrying with `backoff`.
    pub fn new(backend: &'static str, subject: impl Into<String>, backoff: Backoff) -> Self {
        FailureLoop {
            backend,
            subject: subject.into(),
            backoff: backoff.start(),
        }
    }

    /// A round succeeded: the next failure waits the initial delay again (a recovery after
    /// failures is logged once).
    pub fn success(&mut self) {
        if self.backoff.failures() > 0 {
            tracing::info!(
                backend = self.backend,
                subject = %self.subject,
                failures = self.backoff.failures(),
                "{}: watch recovered",
                self.backend
            );
        }
        self.backoff.reset();
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// The next delay (advancing the backoff), without warning or publishing: for loops that
    /// handle one failure kind themselves.
    pub fn next_delay(&mut self) -> Duration {
        self.backoff.next_delay()
    }

    /// A round failed with `error`: takes the next delay, warns (`backend`, `subject`, `error`,
    /// `failures`, `retry_in`), publishes the error into `cache` (subscribers keep the last
    /// good set) and sleeps. Returns `false` when `token` was cancelled meanwhile.
    pub async fn fail(
        &mut self,
        cache: &InstanceCache,
        token: &CancellationToken,
        error: impl Into<BoxError>,
    ) -> bool {
        let delay = self.backoff.next_delay();
        let error = SourceError::new(error.into());
        tracing::warn!(
            backend = self.backend,
            subject = %self.subject,
            %error,
            failures = self.backoff.failures(),
            retry_in = ?delay,
            "{}: watch failing; retrying (keeping the last instances)",
            self.backend
        );
        cache.error(error);
        sleep_or_cancel(token, delay).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fail_publishes_the_error_and_keeps_the_set() {
        let cache = InstanceCache::new();
        cache.update(vec![crate::instance::Instance::from_addr("127.0.0.1:1")]);
        let token = CancellationToken::new();
        let mut failures = FailureLoop::new(
            "test",
            "web",
            Backoff::new(Duration::from_millis(10), Duration::from_millis(10)),
        );
        assert!(failures.fail(&cache, &token, "boom").await);
        let mut sub = cache.subscribe();
        let snapshot = sub.next().await.unwrap();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(
            snapshot.error().map(ToString::to_string).as_deref(),
            Some("boom")
        );
        token.cancel();
        assert!(!failures.fail(&cache, &token, "again").await);
        assert_eq!(failures.failures(), 2);
    }

    #[tokio::test]
    async fn dropping_the_owner_stops_the_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = OwnedTask::spawn("test", |_token| async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(task);
        // The sender is dropped with the aborted task.
        assert!(rx.await.is_err());
    }
}
