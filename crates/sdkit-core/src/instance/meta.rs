//! An instance's metadata: string pairs sorted by key, in one allocation.
//!
//! Registries attach a handful of entries to an instance (a version, a colour, a weight hint).
//! A `BTreeMap` spends a 500-byte node on even one entry; a sorted boxed slice spends 48 bytes
//! per entry and none when empty, so a snapshot of 10 000 instances is megabytes smaller, and
//! cloning, comparing and dropping it touches a tenth of the memory. Lookups are a binary search.

use std::collections::BTreeMap;
use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Metadata entries, sorted by key, keys unique.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MetaMap(Box<[(CompactString, CompactString)]>);

impl MetaMap {
    /// The entries, sorted by key.
    pub(crate) fn entries(&self) -> &[(CompactString, CompactString)] {
        &self.0
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Sets `key` to `value` (replacing an earlier value).
    pub(crate) fn insert(&mut self, key: CompactString, value: CompactString) {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => {
                let mut entries = std::mem::take(&mut self.0).into_vec();
                entries.insert(i, (key, value));
                self.0 = entries.into_boxed_slice();
            }
        }
    }
}

impl FromIterator<(CompactString, CompactString)> for MetaMap {
    /// Later entries of a repeated key replace earlier ones (as collecting into a map does).
    fn from_iter<I: IntoIterator<Item = (CompactString, CompactString)>>(iter: I) -> Self {
        let mut entries: Vec<_> = iter.into_iter().collect();
        // Stable: equal keys stay in arrival order, and the last of each run is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                std::mem::swap(&mut later.1, &mut earlier.1);
                true
            } else {
                false
            }
        });
        MetaMap(entries.into_boxed_slice())
    }
}

impl fmt::Debug for MetaMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl Serialize for MetaMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for MetaMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<CompactString, CompactString>::deserialize(deserializer)?;
        Ok(MetaMap(map.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(s: &str) -> CompactString {
        CompactString::new(s)
    }

    #[test]
    fn collecting_sorts_and_keeps_the_last_value_of_a_repeated_key() {
        let m: MetaMap = [("b", "1"), ("a", "1"), ("b", "2"), ("c", "1"), ("b", "3")]
            .into_iter()
            .map(|(k, v)| (cs(k), cs(v)))
            .collect();
        let got: Vec<_> = m
            .entries()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, [("a", "1"), ("b", "3"), ("c", "1")]);
    }

    #[test]
    fn random_inserts_agree_with_a_btree_map() {
        // A sequence of inserts and lookups against the reference map.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let mut m = MetaMap::default();
            let mut reference = BTreeMap::new();
            for _ in 0..(next() % 20) {
                let (k, v) = (
                    cs(&(next() % 8).to_string()),
                    cs(&(next() % 100).to_string()),
                );
                m.insert(k.clone(), v.clone());
                reference.insert(k, v);
                let key = (next() % 10).to_string();
                assert_eq!(
                    m.get(&key),
                    reference.get(key.as_str()).map(CompactString::as_str)
                );
            }
            let as_map: BTreeMap<_, _> = m.entries().iter().cloned().collect();
            assert_eq!(as_map, reference);
            assert!(
                m.entries().is_sorted_by(|a, b| a.0 < b.0),
                "sorted, keys unique"
            );
            let collected: MetaMap = reference.clone().into_iter().collect();
            assert_eq!(collected, m);
        }
    }

    #[test]
    fn serializes_as_a_json_object() {
        let m: MetaMap = [(cs("v"), cs("1")), (cs("a"), cs("x"))]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"a":"x","v":"1"}"#);
        assert_eq!(serde_json::from_str::<MetaMap>(&json).unwrap(), m);
        assert_eq!(format!("{m:?}"), r#"{"a": "x", "v": "1"}"#);
    }
}
