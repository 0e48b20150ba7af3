//! Sharing serialised long-poll answers between identical requests.
//!
//! One register can wake thousands of parked polls that ask the same question (same env,
//! zone, appids and cursors). The first to run serialises the answer and stores it with the
//! store version it read; the others find it while the version is unchanged and reply with
//! the same bytes, so a wake-up costs one serialisation instead of one per poller. The table
//! is bounded: it is cleared when it reaches [`MAX_ENTRIES`].

use super::body::Chunks;
use sdkit_discovery_proto::Code;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

/// Bound on cached answers.
const MAX_ENTRIES: usize = 4096;

/// A cached answer: (store version, code, body).
type Entry = (u64, Code, Chunks);

/// The answer table.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    map: Mutex<HashMap<String, Entry>>,
}

impl Answers {
    /// The answer stored for `key` at `version`, if any.
    pub(crate) fn get(&self, key: &str, version: u64) -> Option<(Code, Chunks)> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(key) {
            Some((v, code, body)) if *v == version => Some((*code, body.clone())),
            _ => None,
        }
    }

    /// Stores the answer for `key` computed at `version`.
    pub(crate) fn put(&self, key: String, version: u64, code: Code, body: Chunks) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, (version, code, body));
    }
}

/// The cache key of a poll: everything its answer depends on besides the store. The miss
/// list at parking time is part of it: it decides whether a newly missing app ends the wait.
pub(crate) fn key(
    single: bool,
    env: &str,
    zone: &str,
    appids: &[String],
    cursors: &[i64],
    parked_missing: &BTreeSet<String>,
) -> String {
    let mut k = String::with_capacity(64);
    let _ = write!(k, "{}\n{env}\n{zone}", u8::from(single));
    for (a, c) in appids.iter().zip(cursors) {
        let _ = write!(k, "\n{a}={c}");
    }
    for a in parked_missing {
        let _ = write!(k, "\n-{a}");
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn answers_are_shared_only_at_the_same_version() {
        let answers = Answers::default();
        let none = BTreeSet::new();
        let k = key(false, "e", "", &["a".into()], &[5], &none);
        assert_ne!(k, key(false, "e", "", &["a".into()], &[6], &none));
        assert_ne!(k, key(true, "e", "", &["a".into()], &[5], &none));
        assert_ne!(
            k,
            key(
                false,
                "e",
                "",
                &["a".into()],
                &[5],
                &BTreeSet::from(["a".to_owned()])
            )
        );
        answers.put(
            k.clone(),
            7,
            Code::OK,
            Chunks::from(Bytes::from_static(b"x")),
        );
        let (code, body) = answers.get(&k, 7).unwrap();
        assert_eq!((code, body.concat()), (Code::OK, b"x".to_vec()));
        assert!(answers.get(&k, 8).is_none());
        for i in 0..MAX_ENTRIES + 1 {
            answers.put(format!("k{i}"), 1, Code::OK, Chunks::from(Bytes::new()));
        }
        assert!(answers.map.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
