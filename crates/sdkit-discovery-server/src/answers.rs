//! Sharing serialised long-poll answers between identical requests.
//!
//! One register can wake thousands of parked polls that ask the same question (same env,
//! zone, appids and cursors). The first to run serialises the answer and stores it with the
//! store version it read; the others find it while the version is unchanged and reply with
//! the same bytes, so a wake-up costs one serialisation instead of one per poller. The table
//! is bounded in entries ([`MAX_ENTRIES`]) and in bytes (`Limits::max_answer_cache_bytes`):
//! it is cleared when either bound would be passed, and an answer larger than the byte bound
//! is never stored.

use crate::body::Chunks;
use sdkit_discovery_proto::Code;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

/// Bound on cached answers.
const MAX_ENTRIES: usize = 4096;

/// A cached answer: (store version, code, body).
type Entry = (u64, Code, Chunks);

/// The answer table.
#[derive(Debug)]
pub(crate) struct Answers {
    map: Mutex<Table>,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<String, Entry>,
    /// Body bytes plus key bytes of every entry.
    bytes: usize,
}

impl Answers {
    /// An empty table holding at most `max_bytes` of answers.
    pub(crate) fn new(max_bytes: usize) -> Answers {
        Answers {
            map: Mutex::new(Table::default()),
            max_bytes,
        }
    }

    /// Bytes currently held.
    pub(crate) fn bytes(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }

    /// The answer stored for `key` at `version`, if any.
    pub(crate) fn get(&self, key: &str, version: u64) -> Option<(Code, Chunks)> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.entries.get(key) {
            Some((v, code, body)) if *v == version => Some((*code, body.clone())),
            _ => None,
        }
    }

    /// Stores the answer for `key` computed at `version`.
    pub(crate) fn put(&self, key: String, version: u64, code: Code, body: Chunks) {
        let size = body.len() + key.len();
        if size > self.max_bytes {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, old)) = map.entries.remove(&key) {
            map.bytes -= old.len() + key.len();
        }
        if map.entries.len() >= MAX_ENTRIES || map.bytes + size > self.max_bytes {
            map.entries.clear();
            map.bytes = 0;
        }
        map.bytes += size;
        map.entries.insert(key, (version, code, body));
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

/// The serialised `fetch/all` answer, shared by every caller while it is fresh: built by one
/// caller at a time (the others wait for it), reused while the store is unchanged or for
/// [`ALL_MAX_AGE`] (renews change the store constantly in a large registry; `fetch/all` is
/// an admin and peer-sync read, a second old is fine).
#[derive(Debug, Default)]
pub(crate) struct WholeAnswer {
    slot: tokio::sync::Mutex<Option<Built>>,
}

/// How long a `fetch/all` answer is reused although the store changed.
pub(crate) const ALL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Built {
    version: u64,
    at: tokio::time::Instant,
    /// The `data` JSON, or the size limit it passed.
    data: Result<bytes::Bytes, usize>,
}

impl WholeAnswer {
    /// The current answer's `data` JSON (`Err(limit)` when it would exceed the limit),
    /// building it with `build` when there is none fresh enough.
    pub(crate) async fn get<F, Fut>(&self, version: u64, build: F) -> Result<bytes::Bytes, usize>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<bytes::Bytes, usize>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(b) = slot
            .as_ref()
            .filter(|b| b.version == version || b.at.elapsed() < ALL_MAX_AGE)
        {
            return b.data.clone();
        }
        let data = build().await;
        *slot = Some(Built {
            version,
            at: tokio::time::Instant::now(),
            data: data.clone(),
        });
        data
    }
}

/// An `io::Write` into memory that fails past a byte limit, so an oversized answer is
/// refused without being serialised in full.
#[derive(Debug)]
pub(crate) struct Capped {
    pub(crate) buf: Vec<u8>,
    pub(crate) max: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            return Err(std::io::Error::other("answer size limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn answers_are_shared_only_at_the_same_version() {
        let answers = Answers::new(1 << 20);
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
        assert!(answers.map.lock().unwrap().entries.len() <= MAX_ENTRIES);
    }

    #[test]
    fn the_table_is_bounded_in_bytes() {
        let answers = Answers::new(1000);
        let body = || Chunks::from(Bytes::from(vec![b'x'; 300]));
        for i in 0..10 {
            answers.put(format!("k{i}"), 1, Code::OK, body());
            assert!(answers.bytes() <= 1000, "{} bytes", answers.bytes());
        }
        answers.put(
            "big".into(),
            1,
            Code::OK,
            Chunks::from(Bytes::from(vec![0; 2000])),
        );
        assert!(
            answers.get("big", 1).is_none(),
            "larger than the bound: not kept"
        );
        answers.put("k9".into(), 2, Code::OK, body());
        answers.put("k9".into(), 3, Code::OK, body());
        assert!(answers.get("k9", 3).is_some());
        assert!(answers.bytes() <= 1000);
    }
}
