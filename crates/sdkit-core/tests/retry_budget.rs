//! Retry budgets: Finagle's windowed budget (reserve, percentage, expiry) and gRPC's token
//! bucket (threshold, ratio, concurrency), by example and over random sequences.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sdkit_core::retry_budget::{TokenBucket, TpsBudget};

const TTL: Duration = Duration::from_secs(10);

#[test]
fn the_reserve_allows_min_per_sec_times_the_window_without_requests() {
    let budget = TpsBudget::default(); // 10 s, 10/s, 20 %
    let now = Instant::now();
    assert_eq!(budget.available_at(now), 100);
    for i in 0..100 {
        assert!(budget.withdraw_at(now), "retry {i} refused");
    }
    assert!(!budget.withdraw_at(now));
}

#[test]
fn requests_add_twenty_percent_and_expire_after_the_window() {
    let budget = TpsBudget::new(TTL, 0, 0.2);
    let t0 = Instant::now();
    for _ in 0..100 {
        budget.deposit_at(t0);
    }
    assert_eq!(budget.available_at(t0), 20);
    for _ in 0..20 {
        assert!(budget.withdraw_at(t0));
    }
    assert!(!budget.withdraw_at(t0));
    // Half a window later the same requests still count; a full window later they are gone.
    assert!(!budget.withdraw_at(t0 + TTL / 2));
    let later = t0 + TTL + Duration::from_secs(1);
    assert_eq!(budget.available_at(later), 0);
    for _ in 0..50 {
        budget.deposit_at(later);
    }
    assert_eq!(
        budget.available_at(later),
        10,
        "old withdrawals expired too"
    );
}

#[test]
fn retries_refused_by_the_budget_recover_with_new_traffic() {
    let budget = TpsBudget::new(TTL, 1, 0.2);
    let t0 = Instant::now();
    while budget.withdraw_at(t0) {}
    assert!(!budget.withdraw_at(t0));
    for _ in 0..5 {
        budget.deposit_at(t0 + Duration::from_secs(1));
    }
    assert!(budget.withdraw_at(t0 + Duration::from_secs(1)));
}

proptest! {
    /// Within one window, successful retries never exceed 20 % of the requests, and a retry is
    /// refused only when one more would.
    #[test]
    fn within_a_window_retries_are_exactly_twenty_percent(ops in proptest::collection::vec(any::<bool>(), 1..400)) {
        let budget = TpsBudget::new(TTL, 0, 0.2);
        let now = Instant::now();
        let (mut requests, mut retries) = (0u64, 0u64);
        for deposit in ops {
            if deposit {
                budget.deposit_at(now);
                requests += 1;
            } else {
                let allowed = (retries + 1) * 5 <= requests;
                prop_assert_eq!(budget.withdraw_at(now), allowed);
                retries += u64::from(allowed);
            }
            prop_assert!(retries * 5 <= requests);
        }
    }

    /// The bucket matches gRPC's arithmetic: −1 per failure, +ratio per success, capped at the
    /// maximum, retries while more than half remain.
    #[test]
    fn token_bucket_follows_grpc_arithmetic(
        max in 1u32..50,
        ratio_milli in 1u64..3000,
        ops in proptest::collection::vec(any::<bool>(), 1..300),
    ) {
        let bucket = TokenBucket::new(max, ratio_milli as f64 / 1000.0);
        let max_milli = u64::from(max) * 1000;
        let mut tokens = max_milli;
        for success in ops {
            if success {
                bucket.on_success();
                tokens = (tokens + ratio_milli).min(max_milli);
            } else {
                bucket.on_failure();
                tokens = tokens.saturating_sub(1000);
            }
            prop_assert_eq!(bucket.allows_retry(), tokens > max_milli / 2);
            prop_assert!((bucket.tokens() - tokens as f64 / 1000.0).abs() < 1e-9);
        }
    }
}

#[test]
fn token_bucket_is_consistent_under_concurrent_updates() {
    let bucket = Arc::new(TokenBucket::new(1000, 0.5));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let bucket = Arc::clone(&bucket);
            std::thread::spawn(move || {
                for _ in 0..100 {
                    if i % 2 == 0 {
                        bucket.on_failure();
                    } else {
                        bucket.on_success();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // 200 failures and 200 successes from a full bucket: never above the max, so the result
    // depends on the order, but it stays within [1000 − 200, 1000 − 200 + 100].
    let tokens = bucket.tokens();
    assert!((800.0..=900.0).contains(&tokens), "{tokens}");
}
