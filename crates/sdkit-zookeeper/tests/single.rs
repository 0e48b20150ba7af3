//! The ZooKeeper backend against one real ZooKeeper server: registrations and deletions seen by
//! the watch, plain and garbage data, a path created after the instancer started, a node deleted
//! behind the registrar's back, a session expired by the server, the server down and back, and
//! digest auth.

mod common;

use std::time::Duration;

use common::*;
use sdkit_core::{Instance, Instancer as _, Registrar as _};
use sdkit_testkit::{PausableProxy, ZooKeeper};
use sdkit_zookeeper::{Client, Error, Instancer, Registrar};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_deletions_garbage_and_a_late_path_are_seen() {
    init_tracing();
    let zk = ZooKeeper::single().unwrap();
    let raw = raw(&zk.connect_string()).await;
    let client = Client::new(config(zk.servers())).unwrap();

    // The path does not exist yet: the instancer publishes an empty set and keeps watching.
    let instancer = Instancer::new(&client, watch("/late/services/web")).unwrap();
    let mut sub = instancer.subscribe();
    let first = wait_for(&mut sub, "initial empty set", |s| s.error().is_none()).await;
    assert!(first.is_empty(), "{first:?}");

    // Neighbours that must not be picked up: a sibling path and a grandchild.
    put(&raw, "/late/services/webapp/x", b"127.0.0.1:1").await;
    put(&raw, "/late/services/web", b"").await;
    put(&raw, "/late/services/web/plain", b"127.0.0.1:9000").await;
    put(&raw, "/late/services/web/plain/deeper", b"127.0.0.1:9001").await;
    put(&raw, "/late/services/web/garbage", b"not an address").await;
    let seen = wait_for(&mut sub, "the late path's child", |s| {
        ids(s) == set(["plain"])
    })
    .await;
    assert_eq!(seen.instances()[0].addr(), "127.0.0.1:9000");

    let instance = Instance::new("web-1", "10.0.0.1:8080")
        .with_weight(5)
        .with_zone("z1")
        .with_tag("v1")
        .with_meta("version", "1.2");
    let registrar =
        Registrar::new(&client, register("/late/services/web", instance.clone())).unwrap();
    let other = Registrar::new(
        &client,
        register(
            "/late/services/web",
            Instance::new("web-2", "10.0.0.2:8080"),
        ),
    )
    .unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(EVENTUALLY, other.register())
        .await
        .unwrap()
        .unwrap();
    let node = registrar.node().expect("a node");
    assert!(node.starts_with("/late/services/web/web-1-"), "{node}");
    let (data, stat) = raw.get_data(&node).await.unwrap();
    assert_ne!(stat.ephemeral_owner, 0, "the node is ephemeral");
    assert!(String::from_utf8_lossy(&data).contains("\"addr\":\"10.0.0.1:8080\""));

    let seen = wait_for(&mut sub, "both registrations", |s| {
        ids(s) == set(["plain", "web-1", "web-2"])
    })
    .await;
    let mine = seen.instances().iter().find(|i| i.id() == "web-1").unwrap();
    assert_eq!(*mine, instance);

    // Garbage turning valid is picked up (a data change), valid turning garbage is dropped.
    raw.set_data("/late/services/web/garbage", b"127.0.0.1:9002", None)
        .await
        .unwrap();
    wait_for(&mut sub, "repaired garbage", |s| ids(s).contains("garbage")).await;
    raw.set_data("/late/services/web/garbage", b"{\"addr\":0}", None)
        .await
        .unwrap();
    wait_for(&mut sub, "garbage again", |s| !ids(s).contains("garbage")).await;

    // Deletions: a deregistration and a plain node removed.
    tokio::time::timeout(Duration::from_secs(10), other.deregister())
        .await
        .unwrap()
        .unwrap();
    other.deregister().await.unwrap(); // idempotent
    raw.delete("/late/services/web/plain/deeper", None)
        .await
        .unwrap();
    raw.delete("/late/services/web/plain", None).await.unwrap();
    wait_for(&mut sub, "deletions", |s| ids(s) == set(["web-1"])).await;
    assert_eq!(
        children(&raw, "/late/services/web").await,
        [
            node.rsplit('/').next().unwrap().to_owned(),
            "garbage".to_owned()
        ]
        .into_iter()
        .collect()
    );

    // The whole path deleted and created again: still watched.
    raw.delete("/late/services/web/garbage", None)
        .await
        .unwrap();
    registrar.deregister().await.unwrap();
    raw.delete("/late/services/web", None).await.unwrap();
    wait_for(&mut sub, "path gone", |s| {
        s.is_empty() && s.error().is_none()
    })
    .await;
    put(&raw, "/late/services/web/again", b"127.0.0.1:9003").await;
    wait_for(&mut sub, "path back", |s| ids(s) == set(["again"])).await;

    instancer.stop();
    assert!(sub.next().await.is_none(), "nothing after stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_node_and_expired_session_are_recreated_and_an_outage_keeps_the_set() {
    init_tracing();
    let mut zk = ZooKeeper::single().unwrap();
    let raw = raw(&zk.connect_string()).await;
    // The registrar reaches the server through a proxy that can cut it off (a paused client).
    let proxy = PausableProxy::start(zk.addr(0)).await.unwrap();
    let registrar_client = Client::new(config(vec![proxy.addr().to_string()])).unwrap();
    let registrar = Registrar::new(
        &registrar_client,
        register("/services/api", Instance::new("api-1", "10.0.0.9:7000")),
    )
    .unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .unwrap()
        .unwrap();
    let instancer = Instancer::from_config(config(zk.servers()), watch("/services/api")).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, "registration", |s| ids(s) == set(["api-1"])).await;

    // 1. Deleted behind the registrar's back: a new node appears.
    let first = registrar.node().unwrap();
    raw.delete(&first, None).await.unwrap();
    let recreated = Instant::now();
    let deadline = recreated + EVENTUALLY;
    let second = loop {
        let kids = children(&raw, "/services/api").await;
        if let Some(name) = kids.iter().find(|n| n.starts_with("api-1-")) {
            break format!("/services/api/{name}");
        }
        assert!(Instant::now() < deadline, "node never re-created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(first, second, "a new sequential node");
    wait_for(&mut sub, "re-created node seen", |s| {
        ids(s) == set(["api-1"])
    })
    .await;

    // 2. The session expired by the server (the client cut off for longer than the session
    //    timeout): the node is back within the session timeout + 2 s of the expiry.
    let session_timeout = Duration::from_secs(4);
    let old_owner = raw
        .check_stat(&second)
        .await
        .unwrap()
        .expect("node")
        .ephemeral_owner;
    assert_eq!(registrar_client.session_id(), Some(old_owner));
    proxy.pause();
    let deadline = Instant::now() + EVENTUALLY;
    while raw.check_stat(&second).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the server never expired the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expired_at = Instant::now();
    proxy.resume();
    let deadline = expired_at + session_timeout + Duration::from_secs(2);
    loop {
        let mut owners = Vec::new();
        for name in children(&raw, "/services/api")
            .await
            .iter()
            .filter(|n| n.starts_with("api-1-"))
        {
            if let Ok(Some(stat)) = raw.check_stat(&format!("/services/api/{name}")).await {
                owners.push(stat.ephemeral_owner);
            }
        }
        if owners.len() == 1 && owners[0] != old_owner {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node was not back on a new session within {:?} of the expiry (owners {owners:x?})",
            session_timeout + Duration::from_secs(2)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "node back {:?} after the session expired",
        expired_at.elapsed()
    );
    assert_ne!(registrar_client.session_id(), Some(old_owner));
    wait_for(&mut sub, "registration after expiry", |s| {
        ids(s) == set(["api-1"]) && s.error().is_none()
    })
    .await;

    // 3. The server down: the instancer keeps the last good set (with an error).
    zk.kill(0);
    let stale = wait_for(&mut sub, "error while down", |s| s.error().is_some()).await;
    assert_eq!(ids(&stale), set(["api-1"]), "last good set kept");
    // It stays kept for as long as the server is down (several retries).
    let kept_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < kept_until {
        let now = sub.current().expect("a state");
        assert_eq!(ids(&now), set(["api-1"]), "set kept while down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the server back (same data): the registration is there again, the error cleared.
    zk.restart(0).unwrap();
    wait_for(&mut sub, "recovered", |s| {
        ids(s) == set(["api-1"]) && s.error().is_none()
    })
    .await;
    let raw = common::raw(&zk.connect_string()).await;
    let deadline = Instant::now() + EVENTUALLY;
    while children(&raw, "/services/api")
        .await
        .iter()
        .filter(|n| n.starts_with("api-1-"))
        .count()
        != 1
    {
        assert!(
            Instant::now() < deadline,
            "exactly one node after the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    registrar.deregister().await.unwrap();
    wait_for(&mut sub, "deregistered", |s| s.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_protects_nodes_and_never_leaks_the_password() {
    init_tracing();
    let zk = ZooKeeper::single().unwrap();
    let cfg = config(zk.servers()).with_digest("svc", "hunter2");
    let client = Client::new(cfg.clone()).unwrap();
    assert!(!format!("{client:?} {cfg:?}").contains("hunter2"));
    let registrar = Registrar::new(
        &client,
        register("/secure/web", Instance::new("web-1", "10.0.0.1:80")),
    )
    .unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .unwrap()
        .unwrap();
    let node = registrar.node().unwrap();

    // Anyone can read (discover) …
    let anonymous = raw(&zk.connect_string()).await;
    let instancer = Instancer::new(
        &Client::new(config(zk.servers())).unwrap(),
        watch("/secure/web"),
    )
    .unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, "seen without credentials", |s| {
        ids(s) == set(["web-1"])
    })
    .await;
    // … but only the creator may change or delete.
    let denied = anonymous.delete(&node, None).await.unwrap_err();
    assert_eq!(denied, zookeeper_client::Error::NoAuth);
    let (acls, _) = anonymous.get_acl(&node).await.unwrap();
    assert!(
        acls.iter()
            .any(|a| a.scheme() == "digest" && a.id().starts_with("svc:")),
        "{acls:?}"
    );
    assert!(
        !acls.iter().any(|a| a.id().contains("hunter2")),
        "only the hash is stored"
    );

    // A wrong password is refused on writes to the protected path, with the user named and no
    // password in the message.
    let wrong = Client::new(config(zk.servers()).with_digest("svc", "wrong-pass")).unwrap();
    let intruder = Registrar::new(
        &wrong,
        register("/secure/web", Instance::new("web-9", "10.0.0.9:80")),
    )
    .unwrap();
    // Creating a child needs CREATE on /secure/web, which only "svc" with the right password has.
    let attempt = tokio::time::timeout(Duration::from_secs(3), intruder.register()).await;
    assert!(attempt.is_err(), "the intruder must not register");
    assert!(
        !children(&anonymous, "/secure/web")
            .await
            .iter()
            .any(|n| n.starts_with("web-9-")),
        "no node for the intruder"
    );
    registrar.deregister().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_at_all_construction_works_and_errors_are_published() {
    init_tracing();
    let port = sdkit_testkit::free_port();
    let client = Client::new(config(vec![format!("127.0.0.1:{port}")])).unwrap();
    let instancer = Instancer::new(&client, watch("/services/none")).unwrap();
    let mut sub = instancer.subscribe();
    let state = wait_for(&mut sub, "an error event", |s| s.error().is_some()).await;
    assert!(state.is_empty());
    let message = state.error().unwrap().to_string();
    assert!(message.starts_with("zookeeper:"), "{message}");
    assert!(
        Instancer::new(&client, watch("relative")).is_ok(),
        "normalised to /relative"
    );
    assert!(matches!(
        Instancer::new(&client, sdkit_zookeeper::InstancerConfig::new("/a//b")),
        Err(Error::Config(_))
    ));
    instancer.stop();
}
