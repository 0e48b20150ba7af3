//! Waiting for a condition with a deadline — never a sleep as synchronisation — for the core's
//! own suites (which cannot use `sdkit-testkit`: it depends on `sdkit-core`, and a
//! dev-dependency on it would give these tests a second copy of the core's types).

#![allow(dead_code)]

use std::time::Duration;

use tokio::time::Instant;

/// The generous "eventually" bound (as `sdkit_testkit::wait::EVENTUALLY`): a deadline only
/// matters when something is already wrong.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(10);

/// Polls `condition` every 10 ms until it holds; panics naming `what` once `within` has passed.
/// The clock is Tokio's: virtual under a paused runtime.
pub async fn wait_until(within: Duration, what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] within [`EVENTUALLY`].
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    wait_until(EVENTUALLY, what, condition).await;
}
