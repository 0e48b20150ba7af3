//! The Consul Instancer against the Consul API double (a real HTTP server, in-process).

mod common;

use sdkit_core::Backoff;
use std::time::{Duration, Instant};

use common::{client, eventually, ids, until, watch};
use sdkit_consul::{Config, Instancer, InstancerConfig, Registrar, RegistrarConfig};
use sdkit_core::{Instancer as _, Registrar as _};
use sdkit_testkit::ConsulDouble;
use sdkit_testkit::consul::{Fault, ServiceSpec};

const HEALTH: &str = "/v1/health/service/";

#[tokio::test]
async fn registered_instance_is_seen_with_its_attributes() {
    let consul = ConsulDouble::start().await.unwrap();
    let instancer = Instancer::new(&client(&consul), watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    let first = until(&mut sub, "the first (empty) set", |_| true).await;
    assert!(first.is_empty());

    let registrar = Registrar::new(
        &client(&consul),
        RegistrarConfig::new("web", 8080)
            .with_id("web-1")
            .with_address("10.1.2.3")
            .with_tag("v1")
            .with_meta("zone", "sh001")
            .with_meta("version", "1.2")
            .with_weights(7, 2)
            .with_ttl(Duration::from_secs(5)),
    )
    .unwrap();
    registrar.register().await.unwrap();

    let s = until(&mut sub, "web-1", |s| s.len() == 1).await;
    let i = &s.instances()[0];
    assert_eq!(i.id(), "node-1/web-1");
    assert_eq!(i.addr(), "10.1.2.3:8080");
    assert_eq!(i.weight(), 7);
    assert_eq!(i.zone(), Some("sh001"));
    assert_eq!(i.tags().collect::<Vec<_>>(), ["v1"]);
    assert_eq!(i.meta("version"), Some("1.2"));
    assert!(s.error().is_none());

    // The loop really blocks: each health request after the first carries index and wait.
    let req = consul.last_request(HEALTH).unwrap();
    assert!(
        req.param("index")
            .is_some_and(|i| i.parse::<u64>().unwrap() > 0)
    );
    assert_eq!(req.param("wait"), Some("2s"));
    assert_eq!(req.param("passing"), Some("true"));

    registrar.deregister().await.unwrap();
    until(&mut sub, "the instance to leave", |s| s.is_empty()).await;
    instancer.stop();
}

#[tokio::test]
async fn ttl_lapse_takes_the_instance_out_and_heartbeats_bring_it_back() {
    let consul = ConsulDouble::start().await.unwrap();
    let instancer = Instancer::new(&client(&consul), watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    let registrar = Registrar::new(
        &client(&consul),
        RegistrarConfig::new("web", 80)
            .with_id("web-1")
            .with_ttl(Duration::from_millis(400))
            .with_backoff(Backoff::new(
                Duration::from_millis(50),
                Duration::from_millis(200),
            )),
    )
    .unwrap();
    registrar.register().await.unwrap();
    until(&mut sub, "web-1 passing", |s| ids(s) == ["node-1/web-1"]).await;

    // Heartbeats fail (the agent answers 500): the TTL lapses and the check turns critical.
    consul.inject("/v1/agent/check/pass/", Fault::Status(500));
    until(&mut sub, "web-1 to leave the passing set", |s| s.is_empty()).await;
    assert_eq!(
        consul.check_status("service:web-1").as_deref(),
        Some("critical")
    );
    assert_eq!(
        consul.service_ids("web"),
        ["web-1"],
        "critical, not deregistered"
    );

    // Heartbeats resume: the registrar's retry passes the check again.
    consul.clear_faults();
    until(&mut sub, "web-1 back", |s| ids(s) == ["node-1/web-1"]).await;
    registrar.deregister().await.unwrap();
}

#[tokio::test]
async fn several_tags_and_an_extra_filter_are_anded_server_side() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(
        ServiceSpec::new("web", "both")
            .tag("v1")
            .tag("blue")
            .meta("zone", "a"),
    );
    consul.insert_service(
        ServiceSpec::new("web", "both-b")
            .tag("v1")
            .tag("blue")
            .meta("zone", "b"),
    );
    consul.insert_service(
        ServiceSpec::new("web", "v1-only")
            .tag("v1")
            .meta("zone", "a"),
    );
    consul.insert_service(
        ServiceSpec::new("web", "blue-only")
            .tag("blue")
            .meta("zone", "a"),
    );

    let config = watch("web").with_tag("v1").with_tag("blue");
    let instancer = Instancer::new(&client(&consul), config).unwrap();
    let mut sub = instancer.subscribe();
    let s = until(&mut sub, "the tagged set", |s| !s.is_empty()).await;
    assert_eq!(ids(&s), ["node-1/both", "node-1/both-b"]);
    let req = consul.last_request(HEALTH).unwrap();
    assert_eq!(
        req.param("filter"),
        Some(r#"Service.Tags contains "v1" and Service.Tags contains "blue""#)
    );
    assert!(!req.has_param("tag"), "the deprecated tag= is not used");

    let config = watch("web")
        .with_tag("v1")
        .with_tag("blue")
        .with_filter(r#"Service.Meta.zone == "a""#);
    let filtered = Instancer::new(&client(&consul), config).unwrap();
    let mut sub = filtered.subscribe();
    let s = until(&mut sub, "the filtered set", |s| !s.is_empty()).await;
    assert_eq!(ids(&s), ["node-1/both"]);

    // A filter Consul rejects is an error event naming the backend.
    let bad = Instancer::new(
        &client(&consul),
        watch("web").with_filter("Service.Tags ~~ x"),
    )
    .unwrap();
    let mut sub = bad.subscribe();
    let s = until(&mut sub, "an error", |s| s.error().is_some()).await;
    let e = s.error().unwrap().to_string();
    assert!(e.starts_with("consul:") && e.contains("400"), "{e}");
}

#[tokio::test]
async fn datacenter_and_stale_are_sent() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.add_datacenter("dc2");
    consul.insert_service(ServiceSpec::new("web", "local"));
    consul.insert_service(ServiceSpec::new("web", "remote").node("n2", "10.9.0.1", "dc2"));

    let instancer = Instancer::new(
        &client(&consul),
        watch("web").with_datacenter("dc2").with_stale(true),
    )
    .unwrap();
    let mut sub = instancer.subscribe();
    let s = until(&mut sub, "the dc2 set", |s| !s.is_empty()).await;
    assert_eq!(ids(&s), ["n2/remote"]);
    assert_eq!(s.instances()[0].addr(), "10.9.0.1:80");
    let req = consul.last_request(HEALTH).unwrap();
    assert_eq!(req.param("dc"), Some("dc2"));
    assert!(req.has_param("stale"));

    let unknown = Instancer::new(&client(&consul), watch("web").with_datacenter("dc9")).unwrap();
    let mut sub = unknown.subscribe();
    let s = until(&mut sub, "an error", |s| s.error().is_some()).await;
    assert!(
        s.error()
            .unwrap()
            .to_string()
            .contains("No path to datacenter")
    );
}

#[tokio::test]
async fn token_is_sent_as_a_header_and_never_logged() {
    const SECRET: &str = "8f2c-very-secret-acl-token";
    let logs = common::LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // The test runtime is current-thread, so every task logs through this default.
    let _guard = tracing::subscriber::set_default(subscriber);

    let consul = ConsulDouble::start().await.unwrap();
    consul.enable_acl(SECRET);

    // Without the token: 403, an error event, nothing published.
    let anonymous = Instancer::new(&client(&consul), watch("web")).unwrap();
    let mut sub = anonymous.subscribe();
    let s = until(&mut sub, "a 403 error", |s| s.error().is_some()).await;
    assert!(s.error().unwrap().to_string().contains("403"));
    anonymous.stop();

    let config = Config::new(consul.url()).with_token(SECRET);
    let registrar = Registrar::from_config(
        config.clone(),
        RegistrarConfig::new("web", 80)
            .with_id("web-1")
            .with_ttl(Duration::from_millis(500)),
    )
    .unwrap();
    registrar.register().await.unwrap();
    let instancer = Instancer::from_config(config.clone(), watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    until(&mut sub, "web-1", |s| ids(s) == ["node-1/web-1"]).await;
    eventually("a heartbeat", || {
        consul.request_count("/v1/agent/check/pass/") >= 1
    })
    .await;

    for req in consul.requests().iter().filter(|r| {
        r.path.starts_with(HEALTH) && r.header("x-consul-token").is_some()
            || r.path.starts_with("/v1/agent/")
    }) {
        assert_eq!(req.header("x-consul-token"), Some(SECRET), "{}", req.path);
        assert!(!req.has_param("token"), "the token never goes in the URL");
    }
    // Fail heartbeats sent with the token, so errors are logged too.
    let passes = consul.request_count("/v1/agent/check/pass/");
    consul.inject_times("/v1/agent/check/pass/", Fault::Status(500), 2);
    eventually("two failed heartbeats and a good one", || {
        consul.request_count("/v1/agent/check/pass/") >= passes + 3
    })
    .await;
    registrar.deregister().await.unwrap();
    instancer.stop();

    for text in [
        format!("{config:?}"),
        format!(
            "{:?}",
            Instancer::from_config(config.clone(), watch("web")).unwrap()
        ),
        format!("{registrar:?}"),
        format!("{:?}", sdkit_consul::Client::new(config.clone()).unwrap()),
        logs.contents(),
    ] {
        assert!(!text.contains(SECRET), "secret leaked in: {text}");
    }
    assert!(logs.contents().contains("consul"), "logging was captured");
    // The stages' spans carry the service name, and still no secret.
    assert!(
        logs.contents()
            .contains(r#"registrar{backend="consul" service="web""#),
        "{}",
        logs.contents()
    );
}

/// Four sources that fail in four ways for 10 s (the scenario needs the wall time): 500, 429,
/// 503, and an index that never advances (X-Consul-Index: 0, answered at once). With default
/// settings each loop sends at most 20 requests in the 10 s and keeps the last good set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_consul_gets_a_bounded_request_rate_and_the_last_set_is_kept() {
    let faults = [
        Fault::Status(500),
        Fault::Status(429),
        Fault::Status(503),
        Fault::ZeroIndex,
    ];
    let mut cases = Vec::new();
    for fault in faults {
        let consul = ConsulDouble::start().await.unwrap();
        consul.insert_service(ServiceSpec::new("web", "web-1"));
        // Default settings, except a 1 s wait so the in-flight query ends soon.
        let instancer = Instancer::new(
            &client(&consul),
            InstancerConfig::new("web").with_wait(Duration::from_secs(1)),
        )
        .unwrap();
        let mut sub = instancer.subscribe();
        until(&mut sub, "web-1", |s| ids(s) == ["node-1/web-1"]).await;
        cases.push((fault, consul, instancer, sub));
    }
    let started = Instant::now();
    let mut before = Vec::new();
    for (fault, consul, _, _) in &cases {
        before.push(consul.request_count(HEALTH));
        consul.inject(HEALTH, fault.clone());
    }
    // The scenario itself: 10 s of a failing Consul.
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Read every count first: the window is the same 10 s for all four.
    let sent: Vec<usize> = cases
        .iter()
        .zip(&before)
        .map(|((_, consul, _, _), before)| consul.request_count(HEALTH) - before)
        .collect();
    let window = started.elapsed();
    let sent_all = sent.clone();
    for ((fault, _, _, sub), sent) in cases.iter_mut().zip(sent) {
        assert!(sent <= 20, "{fault:?}: {sent} requests in {window:?}");
        assert!(
            sent >= 2,
            "{fault:?}: the loop kept trying ({sent} requests)"
        );
        let s = sub.current().unwrap();
        assert_eq!(ids(&s), ["node-1/web-1"], "{fault:?}: last good set kept");
        match fault {
            Fault::Status(code) => {
                let e = s.error().expect("an error event").to_string();
                assert!(
                    e.contains(&code.to_string()) && e.starts_with("consul:"),
                    "{e}"
                );
            }
            _ => assert!(s.error().is_none()),
        }
    }
    eprintln!("requests in the 10 s window (500, 429, 503, index 0): {sent_all:?}");
    // Recovery: clear the faults and every source heals without a restart.
    for (_, consul, _, _) in &cases {
        consul.clear_faults();
        consul.insert_service(ServiceSpec::new("web", "web-2"));
    }
    for (_, _, instancer, sub) in cases.iter_mut() {
        until(sub, "recovery", |s| s.len() == 2 && s.error().is_none()).await;
        instancer.stop();
    }
}

#[tokio::test]
async fn index_going_backwards_resets_and_recovers() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(ServiceSpec::new("web", "a"));
    let wait = Duration::from_secs(3);
    let instancer = Instancer::new(&client(&consul), watch("web").with_wait(wait)).unwrap();
    let mut sub = instancer.subscribe();
    until(&mut sub, "a", |s| ids(s) == ["node-1/a"]).await;
    eventually("a blocking query", || {
        consul
            .last_request(HEALTH)
            .is_some_and(|r| r.param("index").is_some())
    })
    .await;
    let high: u64 = consul
        .last_request(HEALTH)
        .unwrap()
        .param("index")
        .unwrap()
        .parse()
        .unwrap();
    assert!(high > 5);

    // A snapshot restore: the index drops far below the client's.
    consul.rewind_index(2);
    consul.insert_service(ServiceSpec::new("web", "b"));
    let restored_index = consul.index();
    assert!(restored_index < high);
    let before = consul.request_count(HEALTH);
    // The blocked query answers when its wait ends, with the lower index: the client resets.
    until(&mut sub, "b", |s| ids(s) == ["node-1/a", "node-1/b"]).await;
    eventually("the reset query and a new blocking one", || {
        let reqs: Vec<_> = consul
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(HEALTH))
            .skip(before)
            .collect();
        let reset = reqs.iter().position(|r| r.param("index").is_none());
        reset.is_some_and(|p| {
            reqs[p + 1..]
                .iter()
                .any(|r| r.param("index") == Some(&restored_index.to_string()))
        })
    })
    .await;

    // Blocking works again on the new index: a change arrives well before a wait ends.
    let t = Instant::now();
    consul.insert_service(ServiceSpec::new("web", "c"));
    until(&mut sub, "c", |s| {
        ids(s) == ["node-1/a", "node-1/b", "node-1/c"]
    })
    .await;
    assert!(t.elapsed() < wait, "change seen after {:?}", t.elapsed());
}

#[tokio::test]
async fn stop_during_a_blocking_or_hanging_query_returns_at_once() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(ServiceSpec::new("web", "a"));

    // 1. An ordinary blocking query with the default 55 s wait.
    let instancer = Instancer::new(&client(&consul), InstancerConfig::new("web")).unwrap();
    let mut sub = instancer.subscribe();
    until(&mut sub, "a", |s| ids(s) == ["node-1/a"]).await;
    eventually("a blocking query in flight", || {
        consul
            .last_request(HEALTH)
            .is_some_and(|r| r.param("index").is_some())
    })
    .await;
    let t = Instant::now();
    instancer.stop();
    assert!(sub.next().await.is_none());
    let elapsed = t.elapsed();
    assert!(
        elapsed < Duration::from_millis(100),
        "stop took {elapsed:?}"
    );
    instancer.stop(); // idempotent

    // 2. A hanging answer (Consul never responds).
    consul.inject(HEALTH, Fault::Hang);
    let before = consul.request_count(HEALTH);
    let hanging = Instancer::new(&client(&consul), InstancerConfig::new("web")).unwrap();
    let mut sub = hanging.subscribe();
    eventually("the hanging request", || {
        consul.request_count(HEALTH) > before
    })
    .await;
    let t = Instant::now();
    hanging.stop();
    assert!(sub.next().await.is_none(), "no event after stop");
    let elapsed = t.elapsed();
    assert!(
        elapsed < Duration::from_millis(100),
        "stop took {elapsed:?}"
    );
    drop(hanging);
}

#[tokio::test]
async fn malformed_answers_give_an_error_event_and_keep_the_last_set() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(ServiceSpec::new("web", "a"));
    let instancer = Instancer::new(
        &client(&consul),
        watch("web").with_wait(Duration::from_secs(1)),
    )
    .unwrap();
    let mut sub = instancer.subscribe();
    until(&mut sub, "a", |s| ids(s) == ["node-1/a"]).await;

    for fault in [Fault::MalformedJson, Fault::WrongShape] {
        consul.inject(HEALTH, fault.clone());
        let s = until(&mut sub, "an error event", |s| s.error().is_some()).await;
        assert_eq!(ids(&s), ["node-1/a"], "{fault:?}: last set kept");
        let e = s.error().unwrap().to_string();
        assert!(e.starts_with("consul:") && e.contains("malformed"), "{e}");
        consul.clear_faults();
        let s = until(&mut sub, "recovery", |s| s.error().is_none()).await;
        assert_eq!(ids(&s), ["node-1/a"]);
    }
}

#[tokio::test]
async fn ipv6_addresses_are_bracketed() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(
        ServiceSpec::new("web", "node-addr")
            .port(8080)
            .node("n6", "::1", "dc1"),
    );
    consul.insert_service(
        ServiceSpec::new("web", "svc-addr")
            .port(9090)
            .address("fe80::2"),
    );
    consul.insert_service(
        ServiceSpec::new("web", "bracketed")
            .port(7070)
            .address("[2001:db8::7]"),
    );
    let instancer = Instancer::new(&client(&consul), watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    let s = until(&mut sub, "three", |s| s.len() == 3).await;
    let addrs: Vec<_> = s.instances().iter().map(|i| (i.id(), i.addr())).collect();
    assert_eq!(
        addrs,
        [
            ("n6/node-addr", "[::1]:8080"),
            ("node-1/bracketed", "[2001:db8::7]:7070"),
            ("node-1/svc-addr", "[fe80::2]:9090")
        ]
    );
    assert_eq!(
        s.instances()[0].socket_addr(),
        Some("[::1]:8080".parse().unwrap())
    );
}

#[tokio::test]
async fn warning_state_uses_the_warning_weight_when_not_passing_only() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(ServiceSpec::new("web", "a").weights(10, 3));
    let all = Instancer::new(&client(&consul), watch("web").with_passing_only(false)).unwrap();
    let passing = Instancer::new(&client(&consul), watch("web")).unwrap();
    let (mut all_sub, mut passing_sub) = (all.subscribe(), passing.subscribe());
    let s = until(&mut all_sub, "a", |s| s.len() == 1).await;
    assert_eq!(s.instances()[0].weight(), 10);
    until(&mut passing_sub, "a", |s| s.len() == 1).await;

    consul.set_check_status("service:a", "warning");
    let s = until(&mut all_sub, "warning weight", |s| {
        s.instances().first().is_some_and(|i| i.weight() == 3)
    })
    .await;
    assert_eq!(ids(&s), ["node-1/a"]);
    until(&mut passing_sub, "a to leave the passing set", |s| {
        s.is_empty()
    })
    .await;
}

#[tokio::test]
async fn construction_never_blocks_and_an_unreachable_agent_is_an_error_event() {
    // A port nobody listens on.
    let port = sdkit_testkit::free_port();
    let instancer =
        Instancer::from_config(Config::new(format!("127.0.0.1:{port}")), watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    let s = until(&mut sub, "a transport error", |s| s.error().is_some()).await;
    assert!(s.is_empty());
    assert!(s.error().unwrap().to_string().starts_with("consul:"));
    assert!(sub.ready(Duration::from_millis(10)).await.is_ok());
    assert!(Instancer::from_config(Config::new("127.0.0.1:1"), watch(" ")).is_err());
    assert!(Instancer::from_config(Config::new("http://h:1/path"), watch("web")).is_err());
}

#[tokio::test]
async fn tls_with_a_custom_ca_and_a_client_certificate() {
    use sdkit_consul::TlsConfig;
    let (consul, pki) = ConsulDouble::start_tls().await.unwrap();
    assert!(consul.url().starts_with("https://"));
    consul.insert_service(ServiceSpec::new("web", "a"));

    let tls = TlsConfig::default()
        .with_ca_pem(pki.ca_pem.clone())
        .with_client_cert(&pki.client_cert_file, &pki.client_key_file);
    let config = Config::new(consul.url()).with_tls(tls);
    let instancer = Instancer::from_config(config.clone(), watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    until(&mut sub, "a over mutual TLS", |s| ids(s) == ["node-1/a"]).await;
    let registrar =
        Registrar::from_config(config, RegistrarConfig::new("web", 80).with_id("b")).unwrap();
    registrar.register().await.unwrap();
    until(&mut sub, "b over mutual TLS", |s| {
        ids(s) == ["node-1/a", "node-1/b"]
    })
    .await;
    registrar.deregister().await.unwrap();

    // Without the client certificate the agent refuses the handshake: an error event.
    let no_cert =
        Config::new(consul.url()).with_tls(TlsConfig::default().with_ca_pem(pki.ca_pem.clone()));
    let refused = Instancer::from_config(no_cert, watch("web")).unwrap();
    let mut sub = refused.subscribe();
    let s = until(&mut sub, "a TLS error", |s| s.error().is_some()).await;
    assert!(s.is_empty());
    // Without the test CA the server certificate is not trusted (the default roots are used).
    let untrusted = Instancer::from_config(
        Config::new(consul.url()).with_tls(
            TlsConfig::default().with_client_cert(&pki.client_cert_file, &pki.client_key_file),
        ),
        watch("web"),
    )
    .unwrap();
    let mut sub = untrusted.subscribe();
    let s = until(&mut sub, "a certificate error", |s| s.error().is_some()).await;
    assert!(s.error().unwrap().to_string().starts_with("consul:"));
}

#[tokio::test]
async fn more_instances_than_the_cap_is_an_error_that_keeps_the_last_set() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(ServiceSpec::new("web", "a"));
    consul.insert_service(ServiceSpec::new("web", "b"));
    let instancer = Instancer::new(
        &client(&consul),
        watch("web")
            .with_wait(Duration::from_secs(1))
            .with_max_instances(2),
    )
    .unwrap();
    let mut sub = instancer.subscribe();
    until(&mut sub, "a and b", |s| ids(s) == ["node-1/a", "node-1/b"]).await;

    consul.insert_service(ServiceSpec::new("web", "c"));
    let s = until(&mut sub, "an error event", |s| s.error().is_some()).await;
    assert_eq!(
        ids(&s),
        ["node-1/a", "node-1/b"],
        "the last good set is kept"
    );
    let e = s.error().unwrap().to_string();
    assert!(
        e.starts_with("consul:") && e.contains("max_instances"),
        "{e}"
    );

    assert!(consul.remove_service("c"));
    let s = until(&mut sub, "recovery", |s| s.error().is_none()).await;
    assert_eq!(ids(&s), ["node-1/a", "node-1/b"]);
}
