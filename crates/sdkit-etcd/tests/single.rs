//! The etcd backend against one real etcd node: registration seen by the watch, 1 000 keys,
//! plain/JSON/garbage values, a hung member, stop, auth, and no etcd at all.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Captured, EVENTUALLY, Writer, backoff, config, ids, init_tracing, wait_for};
use sdkit_core::{Instance, Instancer as _, Registrar as _};
use sdkit_etcd::{
    Client, Error, Instancer, InstancerConfig, Registrar, RegistrarConfig, TlsConfig,
};
use sdkit_testkit::EtcdCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_is_watched_and_deregister_removes_it() {
    init_tracing();
    let etcd = EtcdCluster::single().unwrap();
    let cfg = config(etcd.endpoints(), "/services/web");
    let writer = Writer::connect(&etcd.endpoints()).await;
    // Neighbours that a prefix match without a directory boundary would catch.
    writer.put("/services/webapp/x", "127.0.0.1:1").await;
    writer.put("/services/web", "127.0.0.1:2").await;
    writer.put("/services/web0", "127.0.0.1:3").await;

    let instancer = cfg.instancer().unwrap();
    assert_eq!(instancer.prefix(), "/services/web/");
    let mut sub = instancer.subscribe();
    let first = wait_for(&mut sub, EVENTUALLY, "initial empty set", |s| {
        s.error().is_none()
    })
    .await;
    assert!(first.is_empty(), "{first:?}");

    let instance = Instance::new("web-1", "10.0.0.1:8080")
        .with_weight(5)
        .with_zone("z1")
        .with_tag("v1")
        .with_meta("version", "1.2");
    let registrar = cfg.registrar(instance.clone()).unwrap();
    assert_eq!(registrar.key(), "/services/web/web-1");
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .expect("register in time")
        .unwrap();
    let lease = registrar.lease_id().expect("a lease");
    let (value, attached) = writer
        .get("/services/web/web-1")
        .await
        .expect("key written");
    assert_eq!(attached, lease);
    assert!(value.contains("\"addr\":\"10.0.0.1:8080\""), "{value}");

    let seen = wait_for(&mut sub, EVENTUALLY, "registration seen", |s| s.len() == 1).await;
    assert_eq!(seen.instances()[0], instance);

    tokio::time::timeout(Duration::from_secs(5), registrar.deregister())
        .await
        .expect("deregister is bounded")
        .unwrap();
    registrar.deregister().await.unwrap(); // idempotent
    wait_for(&mut sub, EVENTUALLY, "deregistration seen", |s| {
        s.is_empty()
    })
    .await;
    assert!(writer.get("/services/web/web-1").await.is_none());
    // The lease is revoked, not left to expire.
    let ttl = writer
        .client()
        .lease_time_to_live(lease, None)
        .await
        .unwrap()
        .ttl();
    assert_eq!(ttl, -1, "lease {lease:#x} still alive");
    instancer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_keys_are_listed_and_watched() {
    init_tracing();
    let etcd = EtcdCluster::single().unwrap();
    // Small pages, so that listing takes several pages at one revision.
    let cfg = config(etcd.endpoints(), "/big").with_list_page_size(128);
    let writer = Writer::connect(&etcd.endpoints()).await;
    writer.put_many("/big", 0..1000).await;

    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    let listed = wait_for(&mut sub, EVENTUALLY, "1000 listed", |s| s.len() == 1000).await;
    for (i, instance) in listed.instances().iter().enumerate() {
        assert_eq!(instance.id(), format!("k{i:05}"));
        assert_eq!(instance.addr(), format!("127.0.0.1:{}", 10000 + i));
    }

    // 1 000 more through the watch, and every third of the first ones deleted.
    writer.put_many("/big", 1000..2000).await;
    let mut expected: BTreeSet<String> = (0..2000).map(|i| format!("k{i:05}")).collect();
    for i in (0..1000).step_by(3) {
        writer.delete(&format!("/big/k{i:05}")).await;
        expected.remove(&format!("k{i:05}"));
    }
    let expected: Vec<String> = expected.into_iter().collect();
    wait_for(&mut sub, EVENTUALLY, "exact final set", |s| {
        ids(s) == expected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_json_and_garbage_values() {
    init_tracing();
    let etcd = EtcdCluster::single().unwrap();
    let cfg = config(etcd.endpoints(), "/mixed/");
    let writer = Writer::connect(&etcd.endpoints()).await;
    writer.put("/mixed/plain", "10.0.0.1:80").await;
    writer.put("/mixed/url", "http://10.0.0.2:81").await;
    writer
        .put(
            "/mixed/json",
            r#"{"addr":"10.0.0.3:82","weight":3,"zone":"z"}"#,
        )
        .await;
    writer
        .put("/mixed/garbage", "definitely not an address")
        .await;
    writer.put("/mixed/badjson", r#"{"addr": 12}"#).await;

    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    let s = wait_for(&mut sub, EVENTUALLY, "valid values listed", |s| {
        s.len() == 3
    })
    .await;
    assert_eq!(ids(&s), ["json", "plain", "url"]);
    assert!(s.error().is_none(), "a bad value must not fail the set");
    assert_eq!(s.instances()[0].weight(), 3);
    assert_eq!(s.instances()[0].zone(), Some("z"));
    assert_eq!(s.instances()[2].meta("scheme"), Some("http"));

    // Through the watch: garbage skipped, the rest published; a key turning bad is removed.
    writer.put("/mixed/garbage2", "\u{1}\u{2}").await;
    writer.put("/mixed/plain2", "[::1]:8080").await;
    writer.put("/mixed/plain", "broken").await;
    let s = wait_for(&mut sub, EVENTUALLY, "watched values", |s| {
        ids(s) == ["json", "plain2", "url"]
    })
    .await;
    assert!(s.error().is_none());
    // A value that becomes valid again comes back.
    writer.put("/mixed/garbage", "10.0.0.9:99").await;
    wait_for(&mut sub, EVENTUALLY, "fixed value", |s| s.len() == 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_is_detected_and_the_watch_recovers() {
    init_tracing();
    let etcd = EtcdCluster::single().unwrap();
    let cfg = config(etcd.endpoints(), "/hung")
        .with_watch_progress(Duration::from_millis(500), Duration::from_millis(500))
        .with_keepalive(Duration::from_millis(500), Duration::from_millis(500));
    let writer = Writer::connect(&etcd.endpoints()).await;
    writer.put("/hung/a", "127.0.0.1:1").await;
    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "listed", |s| s.len() == 1).await;

    // SIGSTOP: the socket stays open, nothing answers. The watch must notice, not hang.
    etcd.pause(0).unwrap();
    let s = wait_for(&mut sub, EVENTUALLY, "error while hung", |s| {
        s.error().is_some()
    })
    .await;
    assert_eq!(ids(&s), ["a"], "the last good set is kept");
    assert!(s.error().unwrap().to_string().starts_with("etcd: "));
    etcd.resume(0).unwrap();
    writer.put("/hung/b", "127.0.0.1:2").await;
    wait_for(&mut sub, EVENTUALLY, "recovered", |s| {
        s.error().is_none() && s.len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_watch_and_nothing_follows() {
    init_tracing();
    let etcd = EtcdCluster::single().unwrap();
    let cfg = config(etcd.endpoints(), "/stop");
    let writer = Writer::connect(&etcd.endpoints()).await;
    writer.put("/stop/a", "127.0.0.1:1").await;
    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "listed", |s| s.len() == 1).await;
    assert!(
        sdkit_testkit::wait_until_async(EVENTUALLY, || etcd.watch_streams(0).is_ok_and(|n| n == 1))
            .await
    );

    instancer.stop();
    instancer.stop(); // twice is fine
    writer.put("/stop/b", "127.0.0.1:2").await;
    // The subscription ends; no event after stop.
    while let Some(s) = tokio::time::timeout(EVENTUALLY, sub.next()).await.unwrap() {
        assert_eq!(ids(&s), ["a"]);
    }
    assert_eq!(ids(&instancer.cache().current().unwrap()), ["a"]);
    // The watch task ended: etcd serves no watch stream any more.
    assert!(
        sdkit_testkit::wait_until_async(EVENTUALLY, || etcd.watch_streams(0).is_ok_and(|n| n == 0))
            .await,
        "the watch stream was not closed"
    );
    // Dropping a stopped instancer is fine too.
    drop(instancer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_client_keeps_watches_independent() {
    init_tracing();
    let etcd = EtcdCluster::single().unwrap();
    let cfg = config(etcd.endpoints(), "/shared/a");
    let client = Client::new(cfg.client.clone()).unwrap();
    let a = Instancer::new(
        &client,
        InstancerConfig::new("/shared/a").with_backoff(backoff()),
    )
    .unwrap();
    let b = Instancer::new(
        &client,
        InstancerConfig::new("/shared/b").with_backoff(backoff()),
    )
    .unwrap();
    let mut sub_a = a.subscribe();
    let mut sub_b = b.subscribe();
    let registrar = Registrar::new(
        &client,
        RegistrarConfig::new("/shared/b", Instance::new("r", "127.0.0.1:9"))
            .with_backoff(backoff()),
    )
    .unwrap();
    registrar.register().await.unwrap();
    wait_for(&mut sub_b, EVENTUALLY, "registered", |s| s.len() == 1).await;
    // The registrar goes away (go-kit's Deregister closes the shared client's watches) and the
    // other instancer is stopped.
    registrar.deregister().await.unwrap();
    drop(registrar);
    b.stop();
    let writer = Writer::connect(&etcd.endpoints()).await;
    writer.put("/shared/a/x", "127.0.0.1:1").await;
    wait_for(
        &mut sub_a,
        EVENTUALLY,
        "the other watch still delivers",
        |s| s.len() == 1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_right_password_works_wrong_one_is_a_clear_error() {
    let logs = Captured::install();
    let etcd = EtcdCluster::single().unwrap();
    let admin = Writer::connect(&etcd.endpoints()).await;
    let mut c = admin.client();
    c.user_add("root", "rootpw", None).await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    c.auth_enable().await.unwrap();
    let root = Writer::connect_with(&etcd.endpoints(), Some(("root", "rootpw"))).await;
    root.put("/auth/x", "127.0.0.1:1").await;

    let good = config(etcd.endpoints(), "/auth").with_user("root", "rootpw");
    let instancer = good.instancer().unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "listed with auth", |s| s.len() == 1).await;
    let registrar = good.registrar(Instance::new("y", "127.0.0.1:2")).unwrap();
    registrar.register().await.unwrap();
    wait_for(&mut sub, EVENTUALLY, "registered with auth", |s| {
        s.len() == 2
    })
    .await;
    registrar.deregister().await.unwrap();

    let bad = config(etcd.endpoints(), "/auth").with_user("root", "WrongPassword42");
    let Err(err) = Client::new(bad.client.clone()).unwrap().connect().await else {
        panic!("a wrong password must not connect");
    };
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("authentication failed for user \"root\""),
        "{text}"
    );
    assert!(!text.contains("WrongPassword42") && !format!("{err:?}").contains("WrongPassword42"));
    assert!(!format!("{bad:?}").contains("WrongPassword42"));

    // The instancer reports it as a source error, keeps retrying, never panics.
    let failing = bad.instancer().unwrap();
    let mut sub = failing.subscribe();
    let s = wait_for(&mut sub, EVENTUALLY, "auth error", |s| s.error().is_some()).await;
    let shown = s.error().unwrap().to_string();
    assert!(shown.contains("authentication failed"), "{shown}");
    assert!(!shown.contains("WrongPassword42"));
    assert!(s.is_empty());
    drop((failing, instancer));

    // Neither password was logged, at any level, by this crate or its dependencies.
    let logs = logs.text();
    assert!(logs.contains("etcd: watch failing"), "logs were captured");
    assert!(!logs.contains("WrongPassword42"), "wrong password logged");
    assert!(!logs.contains("rootpw"), "password logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_etcd_at_all_construction_still_works() {
    init_tracing();
    let port = sdkit_testkit::free_port();
    let cfg = config(vec![format!("127.0.0.1:{port}")], "/none");
    let started = std::time::Instant::now();
    let instancer = cfg.instancer().unwrap();
    let registrar = cfg.registrar(Instance::new("a", "127.0.0.1:1")).unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "construction blocked"
    );
    let mut sub = instancer.subscribe();
    let s = wait_for(&mut sub, EVENTUALLY, "error published", |s| {
        s.error().is_some()
    })
    .await;
    assert!(s.error().unwrap().to_string().starts_with("etcd: "));
    // register keeps retrying in the background; deregister is bounded.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), registrar.register())
            .await
            .is_err()
    );
    let result = tokio::time::timeout(Duration::from_secs(10), registrar.deregister())
        .await
        .expect("deregister bounded");
    assert!(result.is_err(), "nothing could be deleted: {result:?}");
    instancer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate() {
    init_tracing();
    let etcd = EtcdCluster::start_tls(1).unwrap();
    let tls = etcd.tls().unwrap().clone();
    let endpoints = etcd.endpoints();
    assert!(endpoints[0].starts_with("https://"));
    let good = config(endpoints.clone(), "/tls").with_tls(
        TlsConfig::default()
            .with_ca_file(&tls.ca)
            .with_client_cert(&tls.client_cert, &tls.client_key),
    );
    let instancer = good.instancer().unwrap();
    let mut sub = instancer.subscribe();
    let registrar = good.registrar(Instance::new("a", "127.0.0.1:1")).unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .expect("registered over TLS")
        .unwrap();
    wait_for(&mut sub, EVENTUALLY, "watched over TLS", |s| {
        s.error().is_none() && ids(s) == ["a"]
    })
    .await;
    registrar.deregister().await.unwrap();
    wait_for(&mut sub, EVENTUALLY, "deregistered over TLS", |s| {
        s.is_empty()
    })
    .await;

    // Without the client certificate etcd refuses the handshake: an error, no instances.
    let no_cert =
        config(endpoints.clone(), "/tls").with_tls(TlsConfig::default().with_ca_file(&tls.ca));
    let failing = no_cert.instancer().unwrap();
    let mut sub = failing.subscribe();
    let s = wait_for(&mut sub, EVENTUALLY, "refused", |s| s.error().is_some()).await;
    assert!(s.is_empty());
    // A CA file that does not exist is a clear error too.
    let missing = config(endpoints, "/tls")
        .with_tls(TlsConfig::default().with_ca_file("/nonexistent/ca.pem"));
    let Err(err) = Client::new(missing.client.clone()).unwrap().connect().await else {
        panic!("a missing CA file must fail");
    };
    assert!(matches!(err, Error::TlsFile { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_instances_than_the_cap_is_an_error_that_keeps_the_last_set() {
    init_tracing();
    let etcd = EtcdCluster::single().unwrap();
    // Small pages: the cap holds across pages.
    let mut cfg = config(etcd.endpoints(), "/capped").with_list_page_size(4);
    cfg.client = cfg.client.with_max_instances(10);
    let writer = Writer::connect(&etcd.endpoints()).await;
    writer.put_many("/capped", 0..10).await;

    let instancer = cfg.instancer().unwrap();
    let mut sub = instancer.subscribe();
    let listed = wait_for(&mut sub, EVENTUALLY, "10 listed", |s| s.len() == 10).await;
    assert!(listed.error().is_none());

    // Over the cap through the watch: an error event, the last good set kept.
    writer.put_many("/capped", 10..12).await;
    let s = wait_for(&mut sub, EVENTUALLY, "an error event", |s| {
        s.error().is_some()
    })
    .await;
    assert_eq!(s.len(), 10, "the last good set is kept");
    let e = s.error().unwrap().to_string();
    assert!(e.contains("max_instances"), "{e}");

    // A new instancer over the cap from its first list: an error, never a partial set.
    let fresh = cfg.instancer().unwrap();
    let mut fresh_sub = fresh.subscribe();
    let s = wait_for(&mut fresh_sub, EVENTUALLY, "an error event", |s| {
        s.error().is_some()
    })
    .await;
    assert!(s.is_empty(), "no partial set is published");
    assert!(s.error().unwrap().to_string().contains("max_instances"));

    // Back under the cap: both recover with the exact set.
    writer.delete("/capped/k00010").await;
    writer.delete("/capped/k00011").await;
    for sub in [&mut sub, &mut fresh_sub] {
        let s = wait_for(sub, EVENTUALLY, "recovery", |s| {
            s.error().is_none() && s.len() == 10
        })
        .await;
        assert_eq!(s.instances()[9].id(), "k00009");
    }
}
