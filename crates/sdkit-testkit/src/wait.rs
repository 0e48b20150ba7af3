//! Waiting in tests: one generous deadline, and helpers that wait for a condition instead of
//! sleeping. Every suite of the workspace uses these rather than its own copy.
//!
//! ```
//! use sdkit_core::{FixedInstancer, Instance, Instancer};
//! use sdkit_testkit::wait::{EVENTUALLY, addrs, ids, wait_for};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let instancer = FixedInstancer::new(vec![Instance::new("a", "127.0.0.1:1")]);
//! let mut sub = instancer.subscribe();
//! let snapshot = wait_for(&mut sub, EVENTUALLY, "one instance", |s| s.len() == 1).await;
//! assert_eq!(ids(&snapshot), ["a"]);
//! assert_eq!(addrs(&snapshot), ["127.0.0.1:1"]);
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use sdkit_core::{Snapshot, Subscription};

/// The generous "eventually" bound of every suite: tests must pass on a loaded 2-core machine,
/// and a deadline only matters when something is already wrong.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// Waits at most `deadline` for a snapshot satisfying `pred` (the current one counts); panics
/// naming `what` and the last state seen otherwise.
pub async fn wait_for(
    sub: &mut Subscription,
    deadline: Duration,
    what: &str,
    pred: impl FnMut(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    sub.wait_for(deadline, pred)
        .await
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

/// Waits at most [`EVENTUALLY`] for `cond` to hold (polled); panics naming `what` otherwise.
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        crate::wait_until_async(EVENTUALLY, cond).await,
        "timed out waiting for {what}"
    );
}

/// The instance ids of a snapshot, in its (sorted) order.
pub fn ids(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .instances()
        .iter()
        .map(|i| i.id().to_owned())
        .collect()
}

/// The instance addresses of a snapshot, in its (sorted) order.
pub fn addrs(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .instances()
        .iter()
        .map(|i| i.addr().to_owned())
        .collect()
}
