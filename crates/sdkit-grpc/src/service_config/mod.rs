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

mod error;
mod json;
mod lb;
mod method;

pub use error::ServiceConfigError;
pub use lb::LbPolicy;
pub use method::{MAX_ATTEMPTS_CAP, MethodConfig, RetryPolicy, RetryThrottling};

use std::collections::HashMap;

use serde_json::Value;

use json::{Field, object};
use lb::parse_lb;
use method::{parse_method, parse_throttling};

/// A parsed service config. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceConfig {
    lb: Option<LbPolicy>,
    request_hash_header: Option<http::HeaderName>,
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
        let (lb, request_hash_header) = parse_lb(&root, doc)?;
        let mut config = ServiceConfig {
            lb,
            request_hash_header,
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

    /// The request header whose value is a call's hash key (gRFC A76: `ring_hash_experimental`'s
    /// `requestHashHeader`), if the selected policy names one.
    pub fn request_hash_header(&self) -> Option<&http::HeaderName> {
        self.request_hash_header.as_ref()
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
