//! The JSON objects: [`Instance`], [`InstanceInfo`] and [`Node`].
//!
//! Field names and order follow the reference exactly. Timestamps are Go `UnixNano` values
//! (about 1.6e18, beyond `f64` precision) and are kept as `i64` end to end.

use crate::metadata::{self, Metadata};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// The appid under which every discovery node registers itself.
pub const INFRA_DISCOVERY: &str = "infra.discovery";

/// One registered copy of a service.
///
/// Deserialising is lenient the way clients need it: missing fields default, `metadata: null`
/// becomes an empty map, non-string metadata values are dropped, and comma-joined `addrs` are
/// split (see [`split_addrs`](crate::split_addrs)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Region; stored, never used for filtering.
    #[serde(default)]
    pub region: String,
    /// Zone (e.g. `sh001`); instances are grouped by zone.
    #[serde(default)]
    pub zone: String,
    /// Deployment environment (e.g. `prod`).
    #[serde(default)]
    pub env: String,
    /// Application id (e.g. `main.arch.demo`).
    #[serde(default)]
    pub appid: String,
    /// Host name: the instance key within (appid, env, zone).
    #[serde(default)]
    pub hostname: String,
    /// Addresses, `scheme://host:port`.
    #[serde(default, deserialize_with = "deserialize_addrs")]
    pub addrs: Vec<String>,
    /// Free-form version string.
    #[serde(default)]
    pub version: String,
    /// String metadata.
    #[serde(default, deserialize_with = "metadata::deserialize")]
    pub metadata: Metadata,
    /// 1 = UP, 2 = WAITING.
    #[serde(default)]
    pub status: u32,
    /// When the instance was first registered (ns).
    #[serde(default)]
    pub reg_timestamp: i64,
    /// When the instance last became UP (ns).
    #[serde(default)]
    pub up_timestamp: i64,
    /// Last renew (ns).
    #[serde(default)]
    pub renew_timestamp: i64,
    /// Last-writer-wins stamp between replicas (ns).
    #[serde(default)]
    pub dirty_timestamp: i64,
    /// Last change of this instance (ns).
    #[serde(default)]
    pub latest_timestamp: i64,
}

fn deserialize_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let raw: Option<Vec<String>> = Option::deserialize(d)?;
    Ok(crate::split_addrs(raw.unwrap_or_default()))
}

/// The answer of `fetch` and of each app in `fetchs`/`polls`.
///
/// `I` is the element type: [`Instance`] for clients, a shared pointer such as
/// `Arc<Instance>` for a server that serialises without copying.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo<I = Instance> {
    /// Instances by zone.
    #[serde(default = "BTreeMap::new")]
    pub instances: BTreeMap<String, Vec<I>>,
    /// The reference's optional scheduler object, passed through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<serde_json::Value>,
    /// The (appid, env) cursor: pass it back as `latest_timestamp` in the next poll. Opaque
    /// and valid only on the node that issued it.
    #[serde(default)]
    pub latest_timestamp: i64,
}

/// Status of a discovery node in `nodes` (a different enum from instance status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u32", into = "u32")]
pub enum NodeStatus {
    /// 0: serving.
    Up,
    /// 1 (or anything else): not reachable.
    Lost,
}

impl From<u32> for NodeStatus {
    fn from(v: u32) -> Self {
        if v == 0 {
            NodeStatus::Up
        } else {
            NodeStatus::Lost
        }
    }
}

impl From<NodeStatus> for u32 {
    fn from(s: NodeStatus) -> Self {
        match s {
            NodeStatus::Up => 0,
            NodeStatus::Lost => 1,
        }
    }
}

/// One entry of `GET /discovery/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `host:port`, without scheme.
    pub addr: String,
    /// Node status.
    pub status: NodeStatus,
    /// The node's zone.
    pub zone: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_exactly() {
        let json = r#"{"region":"sh","zone":"sh001","env":"prod","appid":"a","hostname":"h","addrs":["grpc://1.2.3.4:9000"],"version":"v","metadata":{"weight":"10"},"status":1,"reg_timestamp":1525948301833084711,"up_timestamp":9223372036854775807,"renew_timestamp":-1,"dirty_timestamp":0,"latest_timestamp":1525948301833084713}"#;
        let i: Instance = serde_json::from_str(json).unwrap();
        assert_eq!(i.reg_timestamp, 1_525_948_301_833_084_711);
        assert_eq!(serde_json::to_string(&i).unwrap(), json);
    }

    #[test]
    fn lenient_fields() {
        let i: Instance =
            serde_json::from_str(r#"{"metadata":null,"addrs":["http://a:1,grpc://a:2"]}"#).unwrap();
        assert!(i.metadata.is_empty());
        assert_eq!(i.addrs, ["http://a:1", "grpc://a:2"]);
    }

    #[test]
    fn node_shape() {
        let n = Node {
            addr: "127.0.0.1:7171".into(),
            status: NodeStatus::Up,
            zone: "z".into(),
        };
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"addr":"127.0.0.1:7171","status":0,"zone":"z"}"#
        );
    }
}
