//! Instance metadata: a string → string map, sent as a JSON object *string* in requests.
//!
//! The reference unmarshals the parameter into `map[string]string`, so a key whose value is not
//! a string is dropped silently (`{"weight":10}` loses `weight`). The same leniency applies
//! when a client reads `metadata` from a reply, where it may also be `null`.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Instance metadata, ordered by key. Well-known keys: `weight`, `cluster`, `zone`, `color`.
pub type Metadata = BTreeMap<String, String>;

/// Why a metadata parameter was refused.
#[derive(Debug, thiserror::Error)]
#[error("not a JSON object: {0}")]
pub struct MetadataError(#[from] serde_json::Error);

/// Parses a metadata parameter: a JSON object; non-string values are dropped.
///
/// ```
/// use sdkit_discovery_proto::parse_metadata;
/// let m = parse_metadata(r#"{"weight":"10","n":1}"#).unwrap();
/// assert_eq!(m.len(), 1);
/// assert_eq!(m["weight"], "10");
/// assert!(parse_metadata("[1]").is_err());
/// ```
pub fn parse_metadata(json: &str) -> Result<Metadata, MetadataError> {
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)?;
    Ok(keep_strings(raw))
}

fn keep_strings(raw: BTreeMap<String, serde_json::Value>) -> Metadata {
    raw.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect()
}

/// Serde helper for reply fields: accepts `null` or an object, drops non-string values.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Metadata, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(raw.map(keep_strings).unwrap_or_default())
}
