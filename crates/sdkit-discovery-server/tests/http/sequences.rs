//! A stateful property test: random *sequences* of requests with extreme values, the
//! registry's invariants checked after every step (issue #14):
//!
//! * every cursor is monotonic while its app exists and never beyond now + skew;
//! * a poll from an app's cursor taken before a change is answered after that change;
//! * apps, instances, parked polls and the answer cache stay within the limits;
//! * no handler panics, every answer is an envelope.

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use sdkit_discovery_server::proto::{Endpoint, Form};
use sdkit_discovery_server::{Limits, Server, fuzz};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

const APPS: [&str; 3] = ["a.app", "b.app", "infra.discovery"];
const HOSTS: [&str; 4] = ["h0", "h1", "h2", "h3"];

#[derive(Debug, Clone)]
enum Op {
    Register {
        app: usize,
        host: usize,
        ts: i64,
        meta: u8,
    },
    Renew {
        app: usize,
        host: usize,
        ts: i64,
    },
    Cancel {
        app: usize,
        host: usize,
        ts: i64,
    },
    Set {
        app: usize,
        host: usize,
        ts: i64,
        meta: u8,
        status: u8,
    },
    Poll {
        app: usize,
        cursor: Cursor,
    },
    Fetch {
        app: usize,
    },
    FetchAll,
}

#[derive(Debug, Clone, Copy)]
enum Cursor {
    Zero,
    Current,
    Before,
    Extreme(i64),
}

fn ts() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(-1),
        Just(1),
        Just(i64::MAX - 1),
        any::<i64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let app = 0..APPS.len();
    let host = 0..HOSTS.len();
    prop_oneof![
        3 => (app.clone(), host.clone(), ts(), any::<u8>())
            .prop_map(|(app, host, ts, meta)| Op::Register { app, host, ts, meta }),
        1 => (app.clone(), host.clone(), ts()).prop_map(|(app, host, ts)| Op::Renew { app, host, ts }),
        2 => (app.clone(), host.clone(), ts()).prop_map(|(app, host, ts)| Op::Cancel { app, host, ts }),
        2 => (app.clone(), host.clone(), ts(), any::<u8>(), 0u8..4)
            .prop_map(|(app, host, ts, meta, status)| Op::Set { app, host, ts, meta, status }),
        2 => (app.clone(), prop_oneof![
                Just(Cursor::Zero),
                Just(Cursor::Current),
                Just(Cursor::Before),
                ts().prop_map(Cursor::Extreme),
            ]).prop_map(|(app, cursor)| Op::Poll { app, cursor }),
        1 => app.prop_map(|app| Op::Fetch { app }),
        1 => Just(Op::FetchAll),
    ]
}

fn form(pairs: &[(&str, String)]) -> Form {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn metadata(seed: u8) -> String {
    // Up to 8 keys of up to 1000 bytes: merges pass the key and byte limits often.
    let keys = seed % 8;
    let len = usize::from(seed) * 4;
    let pairs: Vec<String> = (0..keys)
        .map(|k| format!(r#""k{}":"{}""#, (seed / 8 + k) % 12, "v".repeat(len)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

struct Run<'a> {
    rt: &'a tokio::runtime::Runtime,
    server: &'a Server,
    limits: &'a Limits,
    /// Last cursor seen per app (while it exists).
    cursors: HashMap<usize, i64>,
}

impl Run<'_> {
    fn call(&self, endpoint: Endpoint, pairs: &[(&str, String)]) -> Result<Value, TestCaseError> {
        let (status, body) = self.rt.block_on(fuzz::dispatch(
            self.server,
            endpoint,
            &form(pairs),
            Some(Duration::ZERO),
        ));
        prop_assert_eq!(status, 200);
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(v["code"].is_i64(), "{}", v);
        Ok(v)
    }

    fn cursor(&self, app: usize) -> Result<Option<i64>, TestCaseError> {
        let v = self.call(
            Endpoint::Fetch,
            &[
                ("env", ENV.into()),
                ("appid", APPS[app].into()),
                ("status", "3".into()),
            ],
        )?;
        Ok(v["data"]["latest_timestamp"].as_i64())
    }

    fn poll(&self, app: usize, cursor: i64) -> Result<Value, TestCaseError> {
        self.call(
            Endpoint::Polls,
            &[
                ("env", ENV.into()),
                ("hostname", "w".into()),
                ("appid", APPS[app].into()),
                ("latest_timestamp", cursor.to_string()),
            ],
        )
    }

    fn key(app: usize, host: usize) -> Vec<(&'static str, String)> {
        vec![
            ("zone", ZONE.into()),
            ("env", ENV.into()),
            ("appid", APPS[app].into()),
            ("hostname", HOSTS[host].into()),
        ]
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let before: Vec<Option<i64>> = (0..APPS.len())
            .map(|a| self.cursor(a))
            .collect::<Result<_, _>>()?;
        let changed = match *op {
            Op::Register {
                app,
                host,
                ts,
                meta,
            } => {
                let mut p = Self::key(app, host);
                p.extend([
                    ("status", "1".into()),
                    ("addrs", "http://127.0.0.1:1".into()),
                    ("dirty_timestamp", ts.to_string()),
                    ("latest_timestamp", ts.to_string()),
                    ("replication", "true".into()),
                    ("metadata", metadata(meta)),
                ]);
                Some(app).filter(|_| {
                    self.call(Endpoint::Register, &p)
                        .is_ok_and(|v| v["code"] == 0)
                })
            }
            Op::Renew { app, host, ts } => {
                let mut p = Self::key(app, host);
                p.extend([
                    ("dirty_timestamp", ts.to_string()),
                    ("replication", "true".into()),
                ]);
                self.call(Endpoint::Renew, &p)?;
                None
            }
            Op::Cancel { app, host, ts } => {
                let mut p = Self::key(app, host);
                p.push(("latest_timestamp", ts.to_string()));
                Some(app).filter(|_| {
                    self.call(Endpoint::Cancel, &p)
                        .is_ok_and(|v| v["code"] == 0)
                })
            }
            Op::Set {
                app,
                host,
                ts,
                meta,
                status,
            } => {
                let mut p = Self::key(app, host);
                p.extend([
                    ("set_timestamp", ts.to_string()),
                    ("metadata", metadata(meta)),
                ]);
                if status > 0 {
                    p.push(("status", status.to_string()));
                }
                Some(app).filter(|_| self.call(Endpoint::Set, &p).is_ok_and(|v| v["code"] == 0))
            }
            Op::Poll { app, cursor } => {
                let current = before[app].unwrap_or(0);
                let c = match cursor {
                    Cursor::Zero => 0,
                    Cursor::Current => current,
                    Cursor::Before => current.saturating_sub(1),
                    Cursor::Extreme(c) => c,
                };
                let v = self.poll(app, c)?;
                prop_assert!(
                    [0, -304].contains(&v["code"].as_i64().unwrap_or(1)),
                    "{}",
                    v
                );
                if before[app].is_some() && c != current {
                    prop_assert_eq!(
                        &v["code"],
                        0,
                        "cursor {} ≠ current {}: answered",
                        c,
                        current
                    );
                }
                None
            }
            Op::Fetch { app } => {
                self.call(
                    Endpoint::Fetch,
                    &[
                        ("env", ENV.into()),
                        ("appid", APPS[app].into()),
                        ("status", "1".into()),
                    ],
                )?;
                None
            }
            Op::FetchAll => {
                prop_assert_eq!(&self.call(Endpoint::FetchAll, &[])?["code"], 0);
                None
            }
        };
        // Cursors: monotonic while the app exists, never beyond the clock's ceiling.
        let (max_cursor, ceiling) = fuzz::cursor_bounds(self.server);
        prop_assert!(
            max_cursor <= ceiling,
            "cursor {} beyond now + skew {}",
            max_cursor,
            ceiling
        );
        for (app, name) in APPS.iter().enumerate() {
            match self.cursor(app)? {
                Some(now) => {
                    if let Some(&seen) = self.cursors.get(&app) {
                        prop_assert!(now >= seen, "{} cursor went back {} → {}", name, seen, now);
                    }
                    self.cursors.insert(app, now);
                }
                None => {
                    self.cursors.remove(&app);
                }
            }
        }
        // A poll from the cursor before a change is answered after it.
        if let Some((app, c)) = changed.and_then(|app| Some((app, before[app]?))) {
            let v = self.poll(app, c)?;
            prop_assert_eq!(
                &v["code"],
                0,
                "change of {} not seen from {}: {}",
                APPS[app],
                c,
                v
            );
        }
        // Memory: within the limits.
        let stats = self.server.handle().stats();
        prop_assert!(stats.apps <= self.limits.max_apps);
        prop_assert!(stats.instances <= self.limits.max_instances);
        prop_assert_eq!(stats.parked_polls, 0);
        prop_assert!(fuzz::answer_cache_bytes(self.server) <= self.limits.max_answer_cache_bytes);
        Ok(())
    }
}

#[test]
fn random_request_sequences_keep_the_invariants() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limits = Limits {
        max_apps: 3,
        max_instances: 7,
        max_instances_per_app: 3,
        max_metadata_keys: 6,
        max_answer_bytes: 16 * 1024,
        max_answer_cache_bytes: 8 * 1024,
        ..Limits::default()
    };
    let mut runner = TestRunner::new(PropConfig {
        cases: 64,
        ..PropConfig::default()
    });
    runner
        .run(&prop::collection::vec(op(), 1..40), |ops| {
            let server = builder()
                .hold(Duration::from_millis(1))
                .limits(limits.clone())
                .build()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut run = Run {
                rt: &rt,
                server: &server,
                limits: &limits,
                cursors: HashMap::new(),
            };
            for op in &ops {
                run.step(op)?;
            }
            Ok(())
        })
        .unwrap();
}
