//! The etcd backend against real three-node clusters (and lease loss on one node): members
//! dying under the watch, members restarted in turn under live registrations, a full outage
//! longer than the TTL, and a compaction past a disconnected watch.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{EVENTUALLY, Writer, config, ids, init_tracing, wait_for};
use sdkit_core::{Instance, Instancer as _, Registrar as _};
use sdkit_etcd::Registrar;
use sdkit_testkit::{EtcdCluster, wait_until_async};

/// The member serving the (only) watch stream.
async fn watched_member(cluster: &EtcdCluster) -> usize {
    let mut found = None;
    let ok = wait_until_async(EVENTUALLY, || {
        found = (0..cluster.len()).find(|&i| cluster.watch_streams(i).is_ok_and(|n| n > 0));
        found.is_some()
    })
    .await;
    assert!(ok, "no member serves the watch");
    found.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_watched_member_loses_nothing() {
    init_tracing();
    let mut cluster = EtcdCluster::start(3).unwrap();
    let endpoints = cluster.endpoints();
    let cfg = config(endpoints.clone(), "/svc");
    let writer = Writer::connect(&endpoints).await;
    writer.put_many("/svc", 0..10).await;
    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "listed", |s| s.len() == 10).await;

    let mut expected: BTreeSet<String> = (0..10).map(|i| format!("k{i:05}")).collect();
    let mut next = 10;
    for round in 0..3 {
        let victim = watched_member(&cluster).await;
        tracing::info!(
            round,
            victim,
            "killing the member the watch is connected to"
        );
        cluster.kill(victim);
        // Registrations change while the watch is being moved to another member.
        for _ in 0..5 {
            writer.put_many("/svc", next..next + 1).await;
            expected.insert(format!("k{next:05}"));
            next += 1;
        }
        let gone = format!("k{:05}", round * 2);
        writer.delete(&format!("/svc/{gone}")).await;
        expected.remove(&gone);
        let want: Vec<String> = expected.iter().cloned().collect();
        wait_for(
            &mut sub,
            EVENTUALLY,
            "converged while a member is down",
            |s| s.error().is_none() && ids(s) == want,
        )
        .await;
        cluster.restart(victim).unwrap();
    }
    let want: Vec<String> = expected.into_iter().collect();
    let s = wait_for(&mut sub, EVENTUALLY, "exact final set", |s| ids(s) == want).await;
    assert_eq!(s.len(), 10 + 15 - 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_each_member_restarting_in_turn() {
    init_tracing();
    let mut cluster = EtcdCluster::start(3).unwrap();
    let endpoints = cluster.endpoints();
    let cfg = config(endpoints.clone(), "/live");
    let writer = Writer::connect(&endpoints).await;
    let registrars: Vec<Registrar> = (0..3)
        .map(|i| {
            cfg.registrar(Instance::new(
                format!("r{i}"),
                format!("127.0.0.1:{}", 9000 + i),
            ))
            .unwrap()
        })
        .collect();
    for r in &registrars {
        tokio::time::timeout(EVENTUALLY, r.register())
            .await
            .unwrap()
            .unwrap();
    }
    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "all registered", |s| s.len() == 3).await;

    for victim in 0..3 {
        cluster.kill(victim);
        // Longer than the TTL (2 s) with the member down: keep-alives must go to the others.
        // Waiting out the TTL is the scenario here, not synchronisation.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for r in &registrars {
            assert!(
                writer.get(r.key()).await.is_some(),
                "{} lost while member {victim} was down",
                r.key()
            );
        }
        cluster.restart(victim).unwrap();
        wait_for(&mut sub, EVENTUALLY, "still three", |s| {
            s.error().is_none() && s.len() == 3
        })
        .await;
    }
    for r in &registrars {
        r.deregister().await.unwrap();
    }
    wait_for(&mut sub, EVENTUALLY, "all gone", |s| s.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_outage_longer_than_the_ttl_the_key_comes_back() {
    init_tracing();
    let mut cluster = EtcdCluster::start(3).unwrap();
    let endpoints = cluster.endpoints();
    let cfg = config(endpoints.clone(), "/outage");
    let ttl = Duration::from_secs(cfg.ttl_secs() as u64);
    let registrar = cfg
        .registrar(Instance::new("me", "127.0.0.1:7000"))
        .unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .unwrap()
        .unwrap();
    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "registered", |s| s.len() == 1).await;

    cluster.kill_all();
    // The outage itself: twice the TTL with no etcd at all.
    tokio::time::sleep(2 * ttl).await;
    let s = wait_for(&mut sub, EVENTUALLY, "outage reported", |s| {
        s.error().is_some()
    })
    .await;
    assert_eq!(ids(&s), ["me"], "last good set kept during the outage");

    cluster.restart_all().unwrap();
    let answering = tokio::time::Instant::now();
    let writer = Writer::connect(&endpoints).await;
    let mut back = false;
    while answering.elapsed() < ttl + Duration::from_secs(2) {
        if writer.get("/outage/me").await.is_some() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        back,
        "key not back within TTL + 2 s of etcd answering again"
    );
    tracing::info!(after = ?answering.elapsed(), "key back");
    // And it stays: the registrar keeps the (possibly new) lease alive.
    let lease = writer.get("/outage/me").await.map(|(_, l)| l);
    assert!(lease.is_some_and(|l| l != 0));
    wait_for(&mut sub, EVENTUALLY, "instancer publishes it", |s| {
        s.error().is_none() && ids(s) == ["me"]
    })
    .await;
    registrar.deregister().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_granted_again_and_the_key_put_back() {
    init_tracing();
    let etcd = EtcdCluster::single().unwrap();
    let cfg = config(etcd.endpoints(), "/lost");
    let writer = Writer::connect(&etcd.endpoints()).await;
    let registrar = cfg
        .registrar(Instance::new("me", "127.0.0.1:7000"))
        .unwrap();
    registrar.register().await.unwrap();
    let first = registrar.lease_id().unwrap();
    // The lease disappears behind the registrar's back (as if it expired): the key goes with it.
    writer.client().lease_revoke(first).await.unwrap();
    assert!(writer.get("/lost/me").await.is_none());
    let started = tokio::time::Instant::now();
    let mut back = None;
    while started.elapsed() < EVENTUALLY {
        if let Some((_, lease)) = writer.get("/lost/me").await {
            back = Some(lease);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease = back.expect("key re-registered");
    assert_ne!(lease, first, "a new lease was granted");
    assert!(started.elapsed() <= Duration::from_secs(cfg.ttl_secs() as u64 + 2));

    // Dropping deregisters in the background.
    drop(registrar);
    let end = tokio::time::Instant::now() + EVENTUALLY;
    while writer.get("/lost/me").await.is_some() {
        assert!(tokio::time::Instant::now() < end, "drop did not deregister");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_past_a_disconnected_watch_relists() {
    init_tracing();
    let mut cluster = EtcdCluster::start(3).unwrap();
    // The instancer only knows member 0, so killing it disconnects the watch.
    let cfg = config(vec![cluster.endpoint(0)], "/compact");
    let others = Writer::connect(&[cluster.endpoint(1), cluster.endpoint(2)]).await;
    others.put_many("/compact", 0..5).await;
    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "listed", |s| s.len() == 5).await;

    cluster.kill(0);
    wait_for(&mut sub, EVENTUALLY, "disconnected", |s| {
        s.error().is_some()
    })
    .await;
    others.delete("/compact/k00000").await;
    others.delete("/compact/k00001").await;
    others.put_many("/compact", 5..8).await;
    others.put("/compact/k00002", "not an address").await;
    let revision = others.current_revision().await;
    others
        .client()
        .compact(
            revision,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    cluster.restart(0).unwrap();

    let s = wait_for(&mut sub, EVENTUALLY, "re-listed after compaction", |s| {
        s.error().is_none() && ids(s) == ["k00003", "k00004", "k00005", "k00006", "k00007"]
    })
    .await;
    assert_eq!(s.len(), 5);
    // And the watch goes on from the new listing.
    others.put("/compact/k00009", "127.0.0.1:9").await;
    wait_for(&mut sub, EVENTUALLY, "watching again", |s| s.len() == 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_that_expires_the_lease_the_key_is_granted_again() {
    init_tracing();
    let mut cluster = EtcdCluster::start(3).unwrap();
    // The registrar only knows member 0; the instancer and the test's writer know the others.
    let reg_cfg = config(vec![cluster.endpoint(0)], "/expire");
    let ttl = Duration::from_secs(reg_cfg.ttl_secs() as u64);
    let registrar = reg_cfg
        .registrar(Instance::new("me", "127.0.0.1:7000"))
        .unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .unwrap()
        .unwrap();
    let first = registrar.lease_id().unwrap();
    let instancer = config(cluster.endpoints(), "/expire").instancer().unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "registered", |s| s.len() == 1).await;

    // Full outage; then the cluster comes back without the registrar's member, so no
    // keep-alive reaches it and etcd really expires the lease (go-kit #1043, kratos #3883).
    cluster.kill_all();
    cluster.restart_some(&[1, 2]).unwrap();
    let others = Writer::connect(&[cluster.endpoint(1), cluster.endpoint(2)]).await;
    let end = tokio::time::Instant::now() + EVENTUALLY;
    while others.get("/expire/me").await.is_some() {
        assert!(tokio::time::Instant::now() < end, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(&mut sub, EVENTUALLY, "expiry seen", |s| s.is_empty()).await;

    // The registrar's member answers again: the key is back within TTL + 2 s, on a new lease.
    cluster.restart(0).unwrap();
    let answering = tokio::time::Instant::now();
    let mut back = None;
    while answering.elapsed() < ttl + Duration::from_secs(2) {
        if let Some((_, lease)) = others.get("/expire/me").await {
            back = Some(lease);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease = back.expect("key not back within TTL + 2 s of etcd answering again");
    assert_ne!(lease, first, "a new lease was granted");
    tracing::info!(after = ?answering.elapsed(), "key back");
    wait_for(&mut sub, EVENTUALLY, "instancer publishes it", |s| {
        s.error().is_none() && ids(s) == ["me"]
    })
    .await;
    registrar.deregister().await.unwrap();
}
