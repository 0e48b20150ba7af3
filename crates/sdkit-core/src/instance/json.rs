//! The JSON form of one instance, for registries that store one value per instance (the etcd and
//! ZooKeeper backends read and write it):
//! `{"addr": "10.0.0.1:8080", "weight": 5, "zone": "sh001", "tags": ["v1"], "metadata":
//! {"version": "1.2"}}`. Only `addr` is required (and must be `host:port`, see
//! [`check_host_port`]); `weight` defaults to 1; an empty zone is no zone; unknown fields are
//! ignored. The id is not part of the form: it is the key or node name the value sits under.
//!
//! ```
//! use sdkit_core::Instance;
//! use sdkit_core::instance::json;
//!
//! let i = json::decode("web-1", r#"{"addr":"10.0.0.1:8080","weight":5,"tags":["v1"]}"#).unwrap();
//! assert_eq!((i.addr(), i.weight()), ("10.0.0.1:8080", 5));
//! assert_eq!(json::decode("web-1", &json::encode(&i)).unwrap(), i);
//! assert!(json::decode("web-2", r#"{"addr":"no port"}"#).is_err());
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Instance, check_host_port};

/// The wire shape.
#[derive(Serialize, Deserialize)]
struct Json {
    addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
}

/// Decodes `text` (a JSON object) as instance `id`.
///
/// # Errors
///
/// Why it was rejected, for the backend to word: `invalid JSON: …`, or the address quoted and
/// what is wrong with it (`"10.0.0.1" has no port`).
pub fn decode(id: &str, text: &str) -> Result<Instance, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    check_addr(&json.addr)?;
    let mut instance = Instance::new(id, json.addr)
        .with_tags(json.tags)
        .with_metadata(json.metadata)
        .with_weight(json.weight.unwrap_or(super::DEFAULT_WEIGHT));
    if let Some(zone) = json.zone.filter(|z| !z.is_empty()) {
        instance = instance.with_zone(zone);
    }
    Ok(instance)
}

/// Encodes `instance` (all but its id) in the JSON form.
pub fn encode(instance: &Instance) -> String {
    let json = Json {
        addr: instance.addr().to_owned(),
        weight: Some(instance.weight()),
        zone: instance.zone().map(str::to_owned),
        tags: instance.tags().map(str::to_owned).collect(),
        metadata: instance
            .metadata()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    };
    // Strings, numbers and string maps always serialize.
    serde_json::to_string(&json).unwrap_or_default()
}

/// [`check_host_port`], worded with the address: `"10.0.0.1" has no port`.
pub fn check_addr(addr: &str) -> Result<(), String> {
    check_host_port(addr).map_err(|bad| format!("{addr:?} {bad}"))
}
