//! Hedging: the race of a primary attempt and its hedge (paused Tokio time: the "endpoints"
//! below take simulated time), and the percentile delay.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sdkit_core::hedge::{Hedge, HedgeDelay, race};
use tokio::time::{Instant, sleep};

const MS: Duration = Duration::from_millis(1);

/// An attempt that answers `result` after `after`, and notes whether it was dropped unfinished.
fn attempt(
    after: Duration,
    result: Result<&'static str, &'static str>,
    cancelled: Arc<AtomicBool>,
) -> impl Future<Output = Result<&'static str, &'static str>> {
    struct OnDrop(Arc<AtomicBool>, bool);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            if !self.1 {
                self.0.store(true, Ordering::SeqCst);
            }
        }
    }
    async move {
        let mut guard = OnDrop(cancelled, false);
        sleep(after).await;
        guard.1 = true;
        result
    }
}

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[tokio::test(start_paused = true)]
async fn a_fast_primary_sends_no_hedge() {
    let (result, hedged) = race(
        attempt(5 * MS, Ok("primary"), flag()),
        Some(10 * MS),
        || -> Option<std::future::Ready<Result<&str, &str>>> { panic!("no hedge expected") },
    )
    .await;
    assert_eq!((result, hedged), (Ok("primary"), false));
}

#[tokio::test(start_paused = true)]
async fn a_slow_primary_loses_to_the_hedge_and_is_cancelled() {
    let started = Instant::now();
    let primary_cancelled = flag();
    let (result, hedged) = race(
        attempt(1000 * MS, Ok("primary"), primary_cancelled.clone()),
        Some(10 * MS),
        || Some(attempt(5 * MS, Ok("hedge"), flag())),
    )
    .await;
    assert_eq!((result, hedged), (Ok("hedge"), true));
    assert_eq!(started.elapsed(), 15 * MS);
    assert!(
        primary_cancelled.load(Ordering::SeqCst),
        "the loser is dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn the_primary_wins_if_it_answers_first_after_the_hedge_started() {
    let hedge_cancelled = flag();
    let (result, hedged) = race(
        attempt(12 * MS, Ok("primary"), flag()),
        Some(10 * MS),
        || Some(attempt(50 * MS, Ok("hedge"), hedge_cancelled.clone())),
    )
    .await;
    assert_eq!((result, hedged), (Ok("primary"), true));
    assert!(hedge_cancelled.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_refused_hedge_waits_for_the_primary() {
    let (result, hedged) = race(
        attempt(100 * MS, Ok("primary"), flag()),
        Some(10 * MS),
        || None::<std::future::Ready<Result<&str, &str>>>,
    )
    .await;
    assert_eq!((result, hedged), (Ok("primary"), false));
}

#[tokio::test(start_paused = true)]
async fn a_failure_waits_for_the_other_attempt() {
    let started = Instant::now();
    let (result, _) = race(
        attempt(20 * MS, Err("primary failed"), flag()),
        Some(10 * MS),
        || Some(attempt(30 * MS, Ok("hedge"), flag())),
    )
    .await;
    assert_eq!(result, Ok("hedge"));
    assert_eq!(started.elapsed(), 40 * MS);
    let (result, _) = race(
        attempt(50 * MS, Ok("primary"), flag()),
        Some(10 * MS),
        || Some(attempt(1 * MS, Err("hedge failed"), flag())),
    )
    .await;
    assert_eq!(result, Ok("primary"));
    let (result, hedged) = race(
        attempt(50 * MS, Err("primary failed"), flag()),
        Some(10 * MS),
        || Some(attempt(1 * MS, Err("hedge failed"), flag())),
    )
    .await;
    assert_eq!((result, hedged), (Err("primary failed"), true));
}

#[test]
fn percentile_delay_tracks_recent_latencies_and_forgets_old_ones() {
    let hedge = Hedge::with_period(
        HedgeDelay::Percentile {
            percentile: 0.95,
            min_samples: 100,
        },
        Duration::from_millis(50),
    );
    for _ in 0..99 {
        hedge.record(Duration::from_millis(2));
    }
    assert_eq!(hedge.delay(), None, "below min_samples");
    for _ in 0..900 {
        hedge.record(Duration::from_millis(2));
    }
    for _ in 0..100 {
        hedge.record(Duration::from_millis(200));
    }
    // 9 % of the calls took 200 ms: p95 is there, within the histogram's 12.5 %.
    let p95 = hedge.delay().unwrap();
    assert!(
        p95 >= Duration::from_millis(200) && p95 <= Duration::from_millis(225),
        "{p95:?}"
    );
    // Two periods later, only the new (fast) calls count.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        for _ in 0..200 {
            hedge.record(Duration::from_millis(2));
        }
        if hedge.delay().is_some_and(|d| d < Duration::from_millis(3)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old latencies never forgotten"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        Hedge::new(HedgeDelay::Fixed(Duration::from_millis(7))).delay(),
        Some(Duration::from_millis(7))
    );
}
