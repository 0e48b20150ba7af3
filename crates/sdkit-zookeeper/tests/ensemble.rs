//! The ZooKeeper backend against a real three-server ensemble: the leader killed while
//! registrations churn, and the watch ends on the exact final set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use sdkit_core::{Instance, Instancer as _, Registrar as _};
use sdkit_testkit::ZooKeeper;
use sdkit_zookeeper::{Instancer, Registrar};
use tokio::time::Instant;

/// A small deterministic generator (xorshift), so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_while_registrations_churn_ends_on_the_exact_set() {
    init_tracing();
    let zk = ZooKeeper::ensemble().unwrap();
    let servers = zk.servers();
    let connect = zk.connect_string();
    let leader = zk.leader().expect("a leader");
    tracing::info!(leader, "ensemble up");
    let zk = Arc::new(std::sync::Mutex::new(zk));

    let instancer =
        Instancer::from_config(config(servers.clone()), watch("/services/churn")).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, "initial set", |s| s.error().is_none()).await;

    let seed = 0x5eed_2026_u64;
    let done = Arc::new(AtomicUsize::new(0));
    let churn = {
        let servers = servers.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut rng = Rng(seed);
            // Each registration has a client (a session) of its own.
            let mut live: BTreeMap<String, Registrar> = BTreeMap::new();
            for op in 0..40 {
                let id = format!("svc-{}", rng.below(6));
                match live.remove(&id) {
                    Some(registrar) => {
                        // Bounded; if it fails mid-election the session closing on drop (or
                        // expiring) still removes the node.
                        let result = registrar.deregister().await;
                        tracing::info!(op, %id, ?result, "deregistered");
                    }
                    None => {
                        let instance = Instance::new(&id, format!("10.0.0.{}:80", op + 1));
                        let registrar = Registrar::from_config(
                            config(servers.clone()),
                            register("/services/churn", instance),
                        )
                        .unwrap();
                        tokio::time::timeout(EVENTUALLY, registrar.register())
                            .await
                            .unwrap_or_else(|_| panic!("op {op}: {id} not registered in time"))
                            .unwrap();
                        tracing::info!(op, %id, "registered");
                        live.insert(id, registrar);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            live
        })
    };

    // Kill the leader while the churn runs.
    assert!(
        wait_until_async_ops(&done, 10).await,
        "the churn did not reach 10 operations"
    );
    let killer = Arc::clone(&zk);
    tokio::task::spawn_blocking(move || killer.lock().unwrap().kill(leader))
        .await
        .unwrap();
    tracing::info!(leader, "leader killed");
    let live = churn.await.expect("churn task");
    let expected: BTreeSet<String> = live.keys().cloned().collect();
    tracing::info!(?expected, "churn done");

    // A new leader was elected among the two survivors.
    let new_leader = zk.lock().unwrap().leader();
    assert!(new_leader.is_some_and(|l| l != leader), "{new_leader:?}");

    // The watch ends on exactly the live registrations …
    let last = wait_for(&mut sub, "exact final set", |s| {
        ids(s) == expected && s.error().is_none()
    })
    .await;
    for instance in last.instances() {
        let registrar = &live[instance.id()];
        let node = registrar.node().expect("registered");
        assert!(node.starts_with(&format!("/services/churn/{}-", instance.id())));
    }
    // … and the tree holds exactly one node per live registration (no duplicates left by a
    // create retried across the failover, none left by a deregistration).
    let raw = raw(&connect).await;
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let nodes = children(&raw, "/services/churn").await;
        let per_id: BTreeMap<&str, usize> = nodes.iter().fold(BTreeMap::new(), |mut m, n| {
            *m.entry(sdkit_zookeeper::value::instance_id(n)).or_default() += 1;
            m
        });
        let exact = per_id
            .keys()
            .map(|k| (*k).to_owned())
            .collect::<BTreeSet<_>>()
            == expected
            && per_id.values().all(|&n| n == 1);
        if exact {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes {nodes:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, registrar) in live {
        registrar.deregister().await.unwrap();
    }
    wait_for(&mut sub, "all gone", |s| {
        s.is_empty() && s.error().is_none()
    })
    .await;
}

/// Waits until `done` reaches `n` (or the churn has clearly stalled).
async fn wait_until_async_ops(done: &AtomicUsize, n: usize) -> bool {
    sdkit_testkit::wait_until_async(EVENTUALLY, || done.load(Ordering::SeqCst) >= n).await
}
