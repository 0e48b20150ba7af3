//! `loadBalancingConfig` / `loadBalancingPolicy`: the balancing policy a service config
//! selects ([`LbPolicy`]).

use http::HeaderName;
use sdkit_core::lb::BalancerConfig;
use serde_json::{Map, Value};

use super::error::ServiceConfigError;
use super::json::{Field, object};

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

/// The selected policy, and the request hash header of a selected `ring_hash_experimental`
/// (gRFC A76's `requestHashHeader`; an empty one means none).
pub(super) fn parse_lb(
    root: &Field<'_>,
    doc: &Map<String, Value>,
) -> Result<(Option<LbPolicy>, Option<HeaderName>), ServiceConfigError> {
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
            let body = entry.child(name, body);
            match lb_entry(name, &body)? {
                Some(policy) => {
                    let header = match name.as_str() {
                        "ring_hash_experimental" => request_hash_header(&body)?,
                        _ => None,
                    };
                    return Ok((Some(policy), header));
                }
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
            Some(policy) => Ok((Some(policy), None)),
            None => Err(ServiceConfigError::new(
                "loadBalancingPolicy",
                format!(
                    "unsupported policy `{name}` (supported: {})",
                    LbPolicy::names().join(", ")
                ),
            )),
        };
    }
    Ok((None, None))
}

/// `ring_hash_experimental`'s `requestHashHeader` (gRFC A76): a lowercase ASCII header name;
/// empty means none.
fn request_hash_header(body: &Field<'_>) -> Result<Option<HeaderName>, ServiceConfigError> {
    let settings = object(body)?;
    let Some(field) = body.get(settings, "requestHashHeader") else {
        return Ok(None);
    };
    let name = field.str()?;
    if name.is_empty() {
        return Ok(None);
    }
    crate::request_hash::header_name(&name)
        .map(Some)
        .map_err(|reason| field.error(reason))
}
