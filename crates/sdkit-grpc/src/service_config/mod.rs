//! The gRPC service config (JSON), as gRPC-go reads it, mapped onto sdkit.
//!
//! A service config selects the balancing policy and per-method behaviour:
//!
//! * `loadBalancingConfig`: a list of `{ "<policy>": { … } }`; the **first supported** entry wins
//!   (gRPC's rule), so a config can list a policy sdkit lacks before a fallback. Supported:
//!   `pick_first` (with `shuffleAddressList`), `round_robin`, `ring_hash_experimental` (with
//!   `minRingSize`, default 1024, and `maxRingSize`, default 4096, as in gRPC; the request's
//!   hash comes from the pick context), and sdkit's own `random`. The legacy
//!   `loadBalancingPolicy` string is read when `loadBalancingConfig` is absent.
//! * `methodConfig`: for the methods its `name` list matches (`{service, method}` exactly,
//!   `{service}` for every method of a service, `{}` for every method), a `timeout`, a
//!   `waitForReady` flag and a `retryPolicy` (`maxAttempts` — capped at 5, as gRPC does —,
//!   `initialBackoff`, `maxBackoff`, `backoffMultiplier`, `retryableStatusCodes`).
//! * `retryThrottling`: gRPC's token bucket (`maxTokens`, `tokenRatio`): each failed attempt
//!   takes a token, each success gives back `tokenRatio`, and retries stop while the bucket is
//!   at or below half.
//!
//! A malformed config is an error naming the field (`methodConfig[0].retryPolicy.maxAttempts:
//! must be an integer ≥ 2`); unknown fields are ignored, as gRPC ignores them.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_grpc::service_config::{LbPolicy, ServiceConfig};
//!
//! let config = ServiceConfig::parse(r#"{
//!   "loadBalancingConfig": [{ "weighted_target_experimental": {} }, { "round_robin": {} }],
//!   "methodConfig": [{
//!     "name": [{ "service": "greeter.Greeter" }],
//!     "timeout": "1.5s",
//!     "retryPolicy": {
//!       "maxAttempts": 4, "initialBackoff": "0.01s", "maxBackoff": "1s",
//!       "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]
//!     }
//!   }]
//! }"#).unwrap();
//! assert_eq!(config.lb_policy(), Some(&LbPolicy::RoundRobin));
//! let method = config.method("/greeter.Greeter/SayHello").unwrap();
//! assert_eq!(method.timeout(), Some(Duration::from_millis(1500)));
//! assert_eq!(method.retry_policy().unwrap().max_attempts(), 4);
//!
//! let err = ServiceConfig::parse(r#"{"methodConfig":[{"name":[{}],"timeout":"soon"}]}"#).unwrap_err();
//! assert_eq!(err.field(), "methodConfig[0].timeout");
//! ```

mod json;

use std::collections::HashMap;
use std::time::Duration;

use sdkit_core::Backoff;
use sdkit_core::lb::BalancerConfig;
use sdkit_core::retry::RetryConfig;
use serde_json::{Map, Value};
use tonic::Code;

use json::{Field, duration, object, status_code};

/// gRPC caps `maxAttempts` at 5; larger values are lowered to it.
pub const MAX_ATTEMPTS_CAP: u32 = 5;

/// A malformed service config: which field, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service config: {field}: {reason}")]
pub struct ServiceConfigError {
    field: String,
    reason: String,
}

impl ServiceConfigError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ServiceConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The JSON path of the offending field, e.g. `methodConfig[0].retryPolicy.maxAttempts`
    /// (empty for the document itself).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What was wrong.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A balancing policy named by a service config (or by `--lb`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LbPolicy {
    /// gRPC's `pick_first`: the first reachable endpoint in the published order, kept while it
    /// stays reachable (sticky), then the next one. With `shuffle`, each channel rotates the
    /// order by a random offset (gRPC's `shuffleAddressList`), which spreads many clients.
    PickFirst {
        /// Rotate the endpoint order by a random offset, once per channel.
        shuffle: bool,
    },
    /// gRPC's `round_robin`: every ready endpoint in turn.
    RoundRobin,
    /// Uniformly random over the ready endpoints.
    Random,
    /// Any other balancer of sdkit-core ([`BalancerConfig`]): `weighted_round_robin`,
    /// `weighted_random`, `p2c`, `p2c_peak_ewma`…; gRPC's `least_request_experimental` maps to
    /// `p2c`, and `ring_hash_experimental` to `ring_hash`.
    Balancer(BalancerConfig),
}

impl LbPolicy {
    /// The policy called `name` (gRPC's names and sdkit-core's), or `None`.
    pub fn from_name(name: &str) -> Option<LbPolicy> {
        match name {
            "pick_first" => Some(LbPolicy::PickFirst { shuffle: false }),
            "round_robin" => Some(LbPolicy::RoundRobin),
            "random" => Some(LbPolicy::Random),
            "least_request_experimental" => name_to_balancer("p2c"),
            "ring_hash_experimental" => Some(LbPolicy::Balancer(grpc_ring_hash(
                GRPC_MIN_RING_SIZE,
                GRPC_MAX_RING_SIZE,
            ))),
            other if sdkit_core::lb::POLICIES.contains(&other) => name_to_balancer(other),
            _ => None,
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &'static str {
        match self {
            LbPolicy::PickFirst { .. } => "pick_first",
            LbPolicy::RoundRobin => "round_robin",
            LbPolicy::Random => "random",
            LbPolicy::Balancer(config) => config.policy(),
        }
    }

    /// Every supported policy name (sdkit-core's balancers included).
    pub fn names() -> Vec<&'static str> {
        let mut names = vec!["pick_first"];
        names.extend(sdkit_core::lb::POLICIES);
        names.push("least_request_experimental");
        names.push("ring_hash_experimental");
        names
    }
}

fn name_to_balancer(name: &str) -> Option<LbPolicy> {
    name.parse::<BalancerConfig>().ok().map(LbPolicy::Balancer)
}

/// gRPC's `ring_hash_experimental` defaults (gRFC A42).
const GRPC_MIN_RING_SIZE: u64 = 1_024;
const GRPC_MAX_RING_SIZE: u64 = 4_096;

fn grpc_ring_hash(minimum: u64, maximum: u64) -> BalancerConfig {
    BalancerConfig::RingHash {
        minimum_ring_size: minimum,
        maximum_ring_size: maximum,
    }
}

/// `ring_hash_experimental`'s `minRingSize` / `maxRingSize` (a number, or a string as protobuf
/// JSON writes 64-bit integers), checked by [`BalancerConfig`]'s bounds.
fn grpc_ring_size(
    body: &Field<'_>,
    settings: &Map<String, Value>,
    key: &str,
    default: u64,
) -> Result<Value, ServiceConfigError> {
    let Some(field) = body.get(settings, key) else {
        return Ok(Value::from(default));
    };
    let n = match field.value() {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    n.map(Value::from)
        .ok_or_else(|| field.error("must be a non-negative integer".to_owned()))
}

/// A `loadBalancingConfig` entry's policy, with its settings.
fn lb_entry(name: &str, body: &Field<'_>) -> Result<Option<LbPolicy>, ServiceConfigError> {
    let settings = object(body)?;
    Ok(match LbPolicy::from_name(name) {
        Some(LbPolicy::PickFirst { .. }) => {
            let shuffle = match body.get(settings, "shuffleAddressList") {
                Some(flag) => flag.bool()?,
                None => false,
            };
            Some(LbPolicy::PickFirst { shuffle })
        }
        Some(LbPolicy::Balancer(_)) if name == "ring_hash_experimental" => {
            let mut config = Map::new();
            config.insert("policy".to_owned(), Value::from("ring_hash"));
            for (key, ours, default) in [
                ("minRingSize", "minimum_ring_size", GRPC_MIN_RING_SIZE),
                ("maxRingSize", "maximum_ring_size", GRPC_MAX_RING_SIZE),
            ] {
                config.insert(
                    ours.to_owned(),
                    grpc_ring_size(body, settings, key, default)?,
                );
            }
            let config: BalancerConfig = serde_json::from_value(Value::Object(config))
                .map_err(|e| ServiceConfigError::new(body.path(""), e.to_string()))?;
            Some(LbPolicy::Balancer(config))
        }
        // sdkit's own balancers take their options (`seed`, `slow_start`, `default_rtt`…);
        // gRPC-defined names (weighted_round_robin, least_request_experimental) carry gRPC's
        // options, which do not apply here and are ignored.
        Some(LbPolicy::Balancer(_))
            if !settings.is_empty()
                && !matches!(name, "weighted_round_robin" | "least_request_experimental") =>
        {
            let mut with_policy = settings.clone();
            with_policy.insert("policy".to_owned(), Value::String(name.to_owned()));
            let config: BalancerConfig = serde_json::from_value(Value::Object(with_policy))
                .map_err(|e| ServiceConfigError::new(body.path(""), e.to_string()))?;
            Some(LbPolicy::Balancer(config))
        }
        other => other,
    })
}

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

/// A parsed service config. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceConfig {
    lb: Option<LbPolicy>,
    methods: Vec<MethodConfig>,
    /// `"service/method"`, `"service/"` and `""` → index into `methods`.
    names: HashMap<String, usize>,
    throttling: Option<RetryThrottling>,
}

impl ServiceConfig {
    /// Parses a service config JSON document.
    ///
    /// # Errors
    ///
    /// A [`ServiceConfigError`] naming the malformed field.
    pub fn parse(json: &str) -> Result<ServiceConfig, ServiceConfigError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| ServiceConfigError::new("", format!("not JSON: {e}")))?;
        let root = Field::root(&value);
        let doc = object(&root)?;
        let mut config = ServiceConfig {
            lb: parse_lb(&root, doc)?,
            ..ServiceConfig::default()
        };
        if let Some(list) = root.get(doc, "methodConfig") {
            for entry in list.array()? {
                let method = parse_method(&entry, object(&entry)?)?;
                for name in method.1 {
                    if config
                        .names
                        .insert(name.clone(), config.methods.len())
                        .is_some()
                    {
                        return Err(ServiceConfigError::new(
                            entry.path("name"),
                            format!("`{}` is named by two method configs", show_name(&name)),
                        ));
                    }
                }
                config.methods.push(method.0);
            }
        }
        if let Some(t) = root.get(doc, "retryThrottling") {
            config.throttling = Some(parse_throttling(&t, object(&t)?)?);
        }
        Ok(config)
    }

    /// The selected balancing policy, if the config names a supported one.
    pub fn lb_policy(&self) -> Option<&LbPolicy> {
        self.lb.as_ref()
    }

    /// The method config for a request path `/package.Service/Method`: the exact match, else the
    /// service's, else the default (`{}`) one.
    pub fn method(&self, path: &str) -> Option<&MethodConfig> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let (service, _) = path.split_once('/').unwrap_or((path, ""));
        let index = self
            .names
            .get(path)
            .or_else(|| self.names.get(&format!("{service}/")))
            .or_else(|| self.names.get(""))?;
        self.methods.get(*index)
    }

    /// `true` when at least one method config exists (the channel then looks methods up).
    pub fn has_method_configs(&self) -> bool {
        !self.methods.is_empty()
    }

    /// The retry throttling bucket, if configured.
    pub fn retry_throttling(&self) -> Option<RetryThrottling> {
        self.throttling
    }
}

fn show_name(key: &str) -> String {
    match key {
        "" => "{}".to_owned(),
        k if k.ends_with('/') => format!("{{service: {}}}", k.trim_end_matches('/')),
        k => {
            let (s, m) = k.split_once('/').unwrap_or((k, ""));
            format!("{{service: {s}, method: {m}}}")
        }
    }
}

fn parse_lb(
    root: &Field<'_>,
    doc: &Map<String, Value>,
) -> Result<Option<LbPolicy>, ServiceConfigError> {
    if let Some(list) = root.get(doc, "loadBalancingConfig") {
        let mut names = Vec::new();
        for entry in list.array()? {
            let map = object(&entry)?;
            let mut keys = map.iter();
            let (name, body) = match (keys.next(), keys.next()) {
                (Some(one), None) => one,
                _ => {
                    return Err(ServiceConfigError::new(
                        entry.path(""),
                        "each entry must hold exactly one policy",
                    ));
                }
            };
            match lb_entry(name, &entry.child(name, body))? {
                Some(policy) => return Ok(Some(policy)),
                None => names.push(name.clone()),
            }
        }
        return Err(ServiceConfigError::new(
            "loadBalancingConfig",
            format!(
                "no supported policy among {names:?} (supported: {})",
                LbPolicy::names().join(", ")
            ),
        ));
    }
    if let Some(legacy) = root.get(doc, "loadBalancingPolicy") {
        let name = legacy.str()?;
        return match LbPolicy::from_name(&name.to_ascii_lowercase()) {
            Some(policy) => Ok(Some(policy)),
            None => Err(ServiceConfigError::new(
                "loadBalancingPolicy",
                format!(
                    "unsupported policy `{name}` (supported: {})",
                    LbPolicy::names().join(", ")
                ),
            )),
        };
    }
    Ok(None)
}

/// One method config and the name keys it claims.
fn parse_method(
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

fn parse_throttling(
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
