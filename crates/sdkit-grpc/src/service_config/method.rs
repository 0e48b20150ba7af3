//! `methodConfig` and `retryThrottling`: per-method timeout, wait-for-ready and retry policy,
//! and the channel's retry token bucket.

use std::time::Duration;

use sdkit_core::Backoff;
use sdkit_core::retry::RetryConfig;
use serde_json::{Map, Value};
use tonic::Code;

use super::error::ServiceConfigError;
use super::json::{Field, duration, object, status_code};

/// gRPC caps `maxAttempts` at 5; larger values are lowered to it.
pub const MAX_ATTEMPTS_CAP: u32 = 5;

/// One `methodConfig` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodConfig {
    timeout: Option<Duration>,
    wait_for_ready: Option<bool>,
    retry: Option<RetryPolicy>,
}

impl MethodConfig {
    /// The call deadline (the smaller of this and the caller's own deadline applies).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// `waitForReady`: when `Some(false)`, a call fails at once with `UNAVAILABLE` while no
    /// endpoint is ready, instead of waiting up to its deadline.
    pub fn wait_for_ready(&self) -> Option<bool> {
        self.wait_for_ready
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }
}

/// A `retryPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    backoff_multiplier: f64,
    retryable: Vec<Code>,
}

impl RetryPolicy {
    /// Attempts in total, the first included (2 ..= 5).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a status code is retried.
    pub fn is_retryable(&self, code: Code) -> bool {
        self.retryable.contains(&code)
    }

    /// The retryable codes.
    pub fn retryable_status_codes(&self) -> &[Code] {
        &self.retryable
    }

    /// gRPC's backoff: attempt `n` waits a random time in `[0, min(initial × multiplierⁿ⁻¹,
    /// max)]` — sdkit's [`Backoff`] with full jitter.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.initial_backoff, self.max_backoff)
            .with_multiplier(self.backoff_multiplier)
            .with_jitter(1.0)
    }

    /// The policy as sdkit's [`RetryConfig`], within a total `timeout`.
    pub fn retry_config(&self, timeout: Duration) -> RetryConfig {
        RetryConfig::new(self.max_attempts, timeout).with_backoff(self.backoff())
    }
}

/// `retryThrottling`: the token bucket shared by every call of a channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryThrottling {
    max_tokens: u32,
    token_ratio: f64,
}

impl RetryThrottling {
    /// The bucket size (1 ..= 1000).
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// Tokens given back per successful call (> 0, three decimals kept).
    pub fn token_ratio(&self) -> f64 {
        self.token_ratio
    }
}

/// One method config and the name keys it claims.
pub(super) fn parse_method(
    entry: &Field<'_>,
    map: &Map<String, Value>,
) -> Result<(MethodConfig, Vec<String>), ServiceConfigError> {
    let mut keys = Vec::new();
    if let Some(names) = entry.get(map, "name") {
        for name in names.array()? {
            let fields = object(&name)?;
            let service = name.get(fields, "service").map(|s| s.str()).transpose()?;
            let method = name.get(fields, "method").map(|m| m.str()).transpose()?;
            let key = match (
                service.as_deref().unwrap_or(""),
                method.as_deref().unwrap_or(""),
            ) {
                ("", "") => String::new(),
                ("", _) => {
                    return Err(ServiceConfigError::new(
                        name.path("service"),
                        "a method needs its service",
                    ));
                }
                (s, "") => format!("{s}/"),
                (s, m) => format!("{s}/{m}"),
            };
            keys.push(key);
        }
    }
    let timeout = entry
        .get(map, "timeout")
        .map(|t| duration(&t))
        .transpose()?;
    let wait_for_ready = entry
        .get(map, "waitForReady")
        .map(|w| w.bool())
        .transpose()?;
    let retry = match entry.get(map, "retryPolicy") {
        Some(r) => Some(parse_retry(&r, object(&r)?)?),
        None => None,
    };
    Ok((
        MethodConfig {
            timeout,
            wait_for_ready,
            retry,
        },
        keys,
    ))
}

fn parse_retry(r: &Field<'_>, map: &Map<String, Value>) -> Result<RetryPolicy, ServiceConfigError> {
    let required = |key: &str| {
        r.get(map, key)
            .ok_or_else(|| ServiceConfigError::new(r.path(key), "required"))
    };
    let attempts = required("maxAttempts")?;
    let max_attempts = attempts
        .value()
        .as_u64()
        .filter(|n| *n >= 2)
        .ok_or_else(|| ServiceConfigError::new(attempts.path(""), "must be an integer ≥ 2"))?;
    let max_attempts =
        u32::try_from(max_attempts.min(u64::from(MAX_ATTEMPTS_CAP))).unwrap_or(MAX_ATTEMPTS_CAP);
    let positive = |key: &str| -> Result<Duration, ServiceConfigError> {
        let field = required(key)?;
        let d = duration(&field)?;
        if d.is_zero() {
            return Err(ServiceConfigError::new(
                field.path(""),
                "must be greater than 0",
            ));
        }
        Ok(d)
    };
    let initial_backoff = positive("initialBackoff")?;
    let max_backoff = positive("maxBackoff")?;
    let multiplier = required("backoffMultiplier")?;
    let backoff_multiplier = multiplier
        .value()
        .as_f64()
        .filter(|m| m.is_finite() && *m > 0.0)
        .ok_or_else(|| ServiceConfigError::new(multiplier.path(""), "must be a number > 0"))?;
    let codes = required("retryableStatusCodes")?;
    let mut retryable = Vec::new();
    for code in codes.array()? {
        retryable.push(status_code(&code)?);
    }
    if retryable.is_empty() {
        return Err(ServiceConfigError::new(
            codes.path(""),
            "must list at least one status code",
        ));
    }
    Ok(RetryPolicy {
        max_attempts,
        initial_backoff,
        max_backoff,
        backoff_multiplier,
        retryable,
    })
}

pub(super) fn parse_throttling(
    t: &Field<'_>,
    map: &Map<String, Value>,
) -> Result<RetryThrottling, ServiceConfigError> {
    let tokens = t
        .get(map, "maxTokens")
        .ok_or_else(|| ServiceConfigError::new(t.path("maxTokens"), "required"))?;
    let max_tokens = tokens
        .value()
        .as_u64()
        .filter(|n| (1..=1000).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            ServiceConfigError::new(tokens.path(""), "must be an integer in 1..=1000")
        })?;
    let ratio = t
        .get(map, "tokenRatio")
        .ok_or_else(|| ServiceConfigError::new(t.path("tokenRatio"), "required"))?;
    let token_ratio = ratio
        .value()
        .as_f64()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| ServiceConfigError::new(ratio.path(""), "must be a number > 0"))?;
    // gRPC keeps three decimal places.
    let token_ratio = (token_ratio * 1000.0).trunc() / 1000.0;
    if token_ratio <= 0.0 {
        return Err(ServiceConfigError::new(
            ratio.path(""),
            "must be at least 0.001",
        ));
    }
    Ok(RetryThrottling {
        max_tokens,
        token_ratio,
    })
}
