//! gRPC's retry throttling: a token bucket shared by every call of a channel.
//!
//! The bucket starts full (`maxTokens`). A failed attempt whose status is retryable takes one
//! token; a successful call gives back `tokenRatio`. Retries (not first attempts) are allowed
//! only while more than half the bucket is left. Kept in thousandths of a token in one atomic.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::service_config::RetryThrottling;

#[derive(Debug)]
pub(crate) struct Throttle {
    milli_tokens: AtomicU64,
    max: u64,
    ratio: u64,
}

impl Throttle {
    pub(crate) fn new(config: RetryThrottling) -> Self {
        let max = u64::from(config.max_tokens()) * 1000;
        Throttle {
            milli_tokens: AtomicU64::new(max),
            max,
            // Three decimals, as gRPC keeps.
            ratio: (config.token_ratio() * 1000.0).round() as u64,
        }
    }

    /// Retries are allowed while more than half the bucket is left.
    pub(crate) fn allows_retry(&self) -> bool {
        self.milli_tokens.load(Ordering::Relaxed) * 2 > self.max
    }

    pub(crate) fn failure(&self) {
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(1000))
            });
    }

    pub(crate) fn success(&self) {
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t + self.ratio).min(self.max))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::Throttle;
    use crate::service_config::ServiceConfig;

    #[test]
    fn bucket_follows_grpc_rules() {
        let config =
            ServiceConfig::parse(r#"{"retryThrottling":{"maxTokens":10,"tokenRatio":0.5}}"#)
                .unwrap()
                .retry_throttling()
                .unwrap();
        let t = Throttle::new(config);
        assert!(t.allows_retry());
        for _ in 0..4 {
            t.failure();
        }
        assert!(t.allows_retry(), "6 of 10 left");
        t.failure();
        assert!(!t.allows_retry(), "5 of 10 is not more than half");
        t.success();
        assert!(t.allows_retry(), "5.5 of 10");
        for _ in 0..100 {
            t.success();
        }
        for _ in 0..4 {
            t.failure();
        }
        assert!(t.allows_retry(), "capped at 10, then 6 left");
    }
}
