//! [`BalancerConfig`]: one serde configuration for every balancer, and its builder.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::hash::{DEFAULT_MAXIMUM_RING_SIZE, DEFAULT_MINIMUM_RING_SIZE, Maglev, RingHash};
use super::p2c::{DEFAULT_RTT, Load, P2c};
use super::slow_start::{SlowStart, serialize_duration};
use super::subset::{Client, DEFAULT_SUBSET_SIZE, Subset};
use super::zone::{DEFAULT_MIN_LOCAL_SHARE, Within, ZoneAware};
use super::{Balancer, Random, RoundRobin, WeightedRandom, WeightedRoundRobin};
use crate::endpoint_set::EndpointSet;
use crate::feedback::state::DEFAULT_DECAY;

/// Which balancer to build, with its options: `{"policy": "p2c_peak_ewma", …}` in JSON, or just
/// the policy's name on the command line ([`FromStr`]). Used by code, by the CLI (`--lb`) and by
/// the gRPC service-config mapping. Unknown fields are rejected.
///
/// | `policy` | balancer | options |
/// |---|---|---|
/// | `round_robin` (default) | [`RoundRobin`] | — |
/// | `random` | [`Random`] | `seed` |
/// | `weighted_round_robin` | [`WeightedRoundRobin`] | `slow_start` |
/// | `weighted_random` | [`WeightedRandom`] | `seed`, `slow_start` |
/// | `p2c` | [`P2c`] over in-flight calls | `seed`, `slow_start` |
/// | `p2c_peak_ewma` | [`P2c`] over PeakEWMA × in-flight | `default_rtt` (30ms), `decay` (10s), `seed`, `slow_start` |
/// | `zone_aware` | [`ZoneAware`] | `zone`, `min_local_share` (0.5), `within` (`round_robin`) |
/// | `subset` | [`Subset`] | `size` (25), `client_index` or `client_key`, `within` (`round_robin`) |
/// | `maglev` | [`Maglev`] consistent hashing | `table_size` |
/// | `ring_hash` | [`RingHash`] consistent hashing, weighted | `minimum_ring_size` (1024), `maximum_ring_size` (8388608) |
///
/// ```
/// use sdkit_core::lb::{Balancer, BalancerConfig};
/// use sdkit_core::{EndpointSet, Instance};
///
/// let config: BalancerConfig =
///     serde_json::from_str(r#"{"policy": "p2c_peak_ewma", "default_rtt": "5ms", "slow_start": {"window": "30s"}}"#).unwrap();
/// let by_name: BalancerConfig = "weighted_round_robin".parse().unwrap();
/// assert_eq!(by_name.policy(), "weighted_round_robin");
///
/// let set = EndpointSet::fixed([(Instance::from_addr("10.0.0.1:80"), "a")]);
/// let balancer = config.build(set);
/// assert_eq!(balancer.pick().unwrap(), "a");
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum BalancerConfig {
    /// [`RoundRobin`].
    #[default]
    RoundRobin,
    /// [`Random`].
    Random {
        /// A fixed seed (reproducible picks on one thread); random when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
    /// [`WeightedRoundRobin`].
    WeightedRoundRobin {
        /// Ramp new endpoints up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slow_start: Option<SlowStart>,
    },
    /// [`WeightedRandom`].
    WeightedRandom {
        /// A fixed seed; random when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
        /// Ramp new endpoints up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slow_start: Option<SlowStart>,
    },
    /// [`P2c`] over calls in flight.
    P2c {
        /// A fixed seed; random when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
        /// Ramp new endpoints up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slow_start: Option<SlowStart>,
    },
    /// [`P2c`] over PeakEWMA latency × calls in flight.
    P2cPeakEwma {
        /// Latency assumed before any observation (default 30ms).
        #[serde(
            default = "default_rtt",
            deserialize_with = "crate::duration::deserialize",
            serialize_with = "serialize_duration"
        )]
        default_rtt: Duration,
        /// How fast the estimate forgets (default 10s).
        #[serde(
            default = "default_decay",
            deserialize_with = "crate::duration::deserialize",
            serialize_with = "serialize_duration"
        )]
        decay: Duration,
        /// A fixed seed; random when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
        /// Ramp new endpoints up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slow_start: Option<SlowStart>,
    },
    /// [`ZoneAware`]: calls stay in the caller's zone while enough of it is ready.
    ZoneAware {
        /// The caller's zone (a pick context's zone overrides it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
        /// The share of the zone that must be ready to stay local (default 0.5).
        #[serde(default = "default_min_local_share")]
        min_local_share: f64,
        /// The policy within the chosen group.
        #[serde(default)]
        within: Within,
    },
    /// [`Subset`]: a stable subset of `size` endpoints per client.
    Subset {
        /// The subset size (default 25).
        #[serde(default = "default_subset_size")]
        size: usize,
        /// This client's index among the clients sharing the list (exact balance).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_index: Option<u64>,
        /// This client's stable name, when it has no index (rendezvous hashing); with
        /// neither, a random name per balancer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_key: Option<String>,
        /// The policy within the subset.
        #[serde(default)]
        within: Within,
    },
    /// [`Maglev`] consistent hashing by the pick context's hash.
    Maglev {
        /// A pinned table size (rounded up to a prime); chosen from the endpoint count when
        /// absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table_size: Option<u32>,
    },
    /// [`RingHash`] consistent hashing (a ketama ring) by the pick context's hash.
    RingHash {
        /// The fewest points on the ring (default 1024, Envoy's).
        #[serde(default = "default_minimum_ring_size", deserialize_with = "ring_size")]
        minimum_ring_size: u64,
        /// The most points on the ring (default and largest 8388608, Envoy's).
        #[serde(default = "default_maximum_ring_size", deserialize_with = "ring_size")]
        maximum_ring_size: u64,
    },
}

fn default_minimum_ring_size() -> u64 {
    DEFAULT_MINIMUM_RING_SIZE
}

fn default_maximum_ring_size() -> u64 {
    DEFAULT_MAXIMUM_RING_SIZE
}

/// A ring size in 1 ..= 8 388 608 (Envoy's bounds).
fn ring_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if (1..=DEFAULT_MAXIMUM_RING_SIZE).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "ring size {n} out of range 1..={DEFAULT_MAXIMUM_RING_SIZE}"
        )))
    }
}

fn default_min_local_share() -> f64 {
    DEFAULT_MIN_LOCAL_SHARE
}

fn default_subset_size() -> usize {
    DEFAULT_SUBSET_SIZE
}

fn default_rtt() -> Duration {
    DEFAULT_RTT
}

fn default_decay() -> Duration {
    DEFAULT_DECAY
}

/// The policy names [`BalancerConfig`] accepts, in the order of its table.
pub const POLICIES: &[&str] = &[
    "round_robin",
    "random",
    "weighted_round_robin",
    "weighted_random",
    "p2c",
    "p2c_peak_ewma",
    "zone_aware",
    "subset",
    "maglev",
    "ring_hash",
];

impl BalancerConfig {
    /// The policy's name (`"p2c_peak_ewma"`).
    pub fn policy(&self) -> &'static str {
        match self {
            BalancerConfig::RoundRobin => "round_robin",
            BalancerConfig::Random { .. } => "random",
            BalancerConfig::WeightedRoundRobin { .. } => "weighted_round_robin",
            BalancerConfig::WeightedRandom { .. } => "weighted_random",
            BalancerConfig::P2c { .. } => "p2c",
            BalancerConfig::P2cPeakEwma { .. } => "p2c_peak_ewma",
            BalancerConfig::ZoneAware { .. } => "zone_aware",
            BalancerConfig::Subset { .. } => "subset",
            BalancerConfig::Maglev { .. } => "maglev",
            BalancerConfig::RingHash { .. } => "ring_hash",
        }
    }

    /// `true` when the balancer reads the feedback path (its guards track calls).
    pub fn uses_feedback(&self) -> bool {
        matches!(
            self,
            BalancerConfig::P2c { .. }
                | BalancerConfig::P2cPeakEwma { .. }
                | BalancerConfig::ZoneAware {
                    within: Within::P2c,
                    ..
                }
                | BalancerConfig::Subset {
                    within: Within::P2c,
                    ..
                }
        )
    }

    /// Builds the balancer over `set`, counting its picks ([`Metered`](super::Metered), labelled
    /// with the set's service and backend and [`policy`](Self::policy)).
    pub fn build<S>(&self, set: EndpointSet<S>) -> Box<dyn Balancer<S>>
    where
        S: Clone + Send + Sync + 'static,
    {
        let metered = set.clone();
        Box::new(super::Metered::new(
            self.build_unmetered(set),
            &metered,
            self.policy(),
        ))
    }

    /// Builds the balancer over `set`, without metrics.
    pub fn build_unmetered<S>(&self, set: EndpointSet<S>) -> Box<dyn Balancer<S>>
    where
        S: Clone + Send + Sync + 'static,
    {
        let seed = |seed: &Option<u64>| seed.unwrap_or_else(rand::random);
        match self {
            BalancerConfig::RoundRobin => Box::new(RoundRobin::new(set)),
            BalancerConfig::Random { seed: s } => Box::new(Random::with_seed(set, seed(s))),
            BalancerConfig::WeightedRoundRobin { slow_start } => {
                let b = WeightedRoundRobin::new(set);
                Box::new(match slow_start {
                    Some(s) => b.with_slow_start(*s),
                    None => b,
                })
            }
            BalancerConfig::WeightedRandom {
                seed: s,
                slow_start,
            } => {
                let b = WeightedRandom::with_seed(set, seed(s));
                Box::new(match slow_start {
                    Some(s) => b.with_slow_start(*s),
                    None => b,
                })
            }
            BalancerConfig::P2c {
                seed: s,
                slow_start,
            } => Box::new(p2c(set, Load::InFlight, seed(s), slow_start)),
            BalancerConfig::P2cPeakEwma {
                default_rtt,
                decay,
                seed: s,
                slow_start,
            } => Box::new(p2c(
                set,
                Load::PeakEwma {
                    default_rtt: *default_rtt,
                    decay: *decay,
                },
                seed(s),
                slow_start,
            )),
            BalancerConfig::ZoneAware {
                zone,
                min_local_share,
                within,
            } => {
                let b = ZoneAware::new(set)
                    .with_min_local_share(*min_local_share)
                    .with_within(*within);
                Box::new(match zone {
                    Some(zone) => b.with_zone(zone),
                    None => b,
                })
            }
            BalancerConfig::Subset {
                size,
                client_index,
                client_key,
                within,
            } => {
                let client = match (client_index, client_key) {
                    (Some(index), _) => Client::Index(*index),
                    (None, Some(key)) => Client::Key(key.into()),
                    (None, None) => Client::Key(format!("{:016x}", rand::random::<u64>()).into()),
                };
                Box::new(
                    Subset::new(set, client)
                        .with_size(*size)
                        .with_within(*within),
                )
            }
            BalancerConfig::Maglev { table_size } => {
                let b = Maglev::new(set);
                Box::new(match table_size {
                    Some(size) => b.with_table_size(*size),
                    None => b,
                })
            }
            BalancerConfig::RingHash {
                minimum_ring_size,
                maximum_ring_size,
            } => Box::new(
                RingHash::new(set)
                    .with_minimum_ring_size(*minimum_ring_size)
                    .with_maximum_ring_size(*maximum_ring_size),
            ),
        }
    }
}

fn p2c<S: Send + Sync + 'static>(
    set: EndpointSet<S>,
    load: Load,
    seed: u64,
    slow_start: &Option<SlowStart>,
) -> P2c<S> {
    let b = P2c::with_seed(set, load, seed);
    match slow_start {
        Some(s) => b.with_slow_start(*s),
        None => b,
    }
}

/// A policy name or JSON text that is not a [`BalancerConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown balancer {0}; expected one of {POLICIES:?} or a JSON object {{\"policy\": …}}")]
pub struct UnknownPolicy(String);

impl FromStr for BalancerConfig {
    type Err = UnknownPolicy;

    /// A policy name with default options (`p2c_peak_ewma`), or a JSON object.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let json = if text.starts_with('{') {
            text.to_owned()
        } else {
            let name = serde_json::Value::String(text.replace('-', "_"));
            format!("{{\"policy\": {name}}}")
        };
        serde_json::from_str(&json).map_err(|e| UnknownPolicy(format!("{text:?} ({e})")))
    }
}

impl fmt::Display for BalancerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.policy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_name_parses_and_round_trips() {
        for name in POLICIES {
            let config: BalancerConfig = name.parse().unwrap();
            assert_eq!(config.policy(), *name);
            let json = serde_json::to_string(&config).unwrap();
            assert_eq!(
                serde_json::from_str::<BalancerConfig>(&json).unwrap(),
                config
            );
        }
        assert!("least_conn".parse::<BalancerConfig>().is_err());
        let ring: BalancerConfig = r#"{"policy": "ring_hash", "minimum_ring_size": 4096}"#
            .parse()
            .unwrap();
        assert_eq!(
            ring,
            BalancerConfig::RingHash {
                minimum_ring_size: 4_096,
                maximum_ring_size: 8_388_608
            }
        );
        for bad in [0, 8_388_609] {
            let json = format!(r#"{{"policy": "ring_hash", "maximum_ring_size": {bad}}}"#);
            assert!(json.parse::<BalancerConfig>().is_err(), "{bad}");
        }
        assert!(r#"{"policy": "p2c", "bogus": 1}"#.parse::<BalancerConfig>().is_err());
        let c: BalancerConfig = r#"{"policy": "p2c_peak_ewma", "decay": "2s"}"#.parse().unwrap();
        assert_eq!(
            c,
            BalancerConfig::P2cPeakEwma {
                default_rtt: DEFAULT_RTT,
                decay: Duration::from_secs(2),
                seed: None,
                slow_start: None
            }
        );
    }
}
