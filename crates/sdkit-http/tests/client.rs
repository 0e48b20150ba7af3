//! The name-resolving client against real hyper servers on loopback: spreading, a server killed
//! mid-traffic, safe retries (POST after its body was sent, streaming bodies), 5xx answers,
//! timeouts, and the typed errors.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Behaviour, TestServer, dead_addr, text};
use sdkit_core::retry::GaveUp;
use sdkit_core::{FixedInstancer, Instance};
use sdkit_http::{AttemptError, AttemptFailure, Client, Config, Error, Served};

fn instances(addrs: &[String]) -> FixedInstancer {
    FixedInstancer::new(addrs.iter().map(Instance::from_addr).collect())
}

fn client_for(config: Config, addrs: &[String]) -> Client {
    let client = Client::new(config).expect("client");
    client
        .add_instancer(
            "web",
            format!("static://{}", addrs.join(",")),
            instances(addrs),
        )
        .expect("add");
    client
}

/// `POST url` with an in-memory (replayable) body.
async fn post(
    client: &Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> Result<reqwest::Response, Error> {
    let request = client
        .request(http::Method::POST, url)
        .body(body)
        .build()
        .expect("request");
    client.execute(request).await
}

fn served(response: &reqwest::Response) -> Served {
    response
        .extensions()
        .get::<Served>()
        .cloned()
        .expect("Served extension")
}

fn failures(error: &Error) -> Vec<AttemptFailure> {
    error
        .attempts()
        .iter()
        .map(|e| {
            AttemptError::find(e)
                .unwrap_or_else(|| panic!("not an attempt error: {e:?}"))
                .failure()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_spreads_round_robin_and_says_who_served() {
    let servers = [
        TestServer::start("a", Behaviour::Ok).await,
        TestServer::start("b", Behaviour::Ok).await,
        TestServer::start("c", Behaviour::Ok).await,
    ];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let client = client_for(Config::default(), &addrs);
    for _ in 0..30 {
        let response = client.get("http://web/hello?x=1").await.expect("get");
        assert_eq!(response.status(), 200);
        let who = served(&response);
        assert_eq!(who.attempts, 1);
        let body = text(response).await;
        let server = servers
            .iter()
            .find(|s| s.addr.to_string() == *who.addr)
            .unwrap();
        assert_eq!(body, format!("hello from {}", server.name));
    }
    for server in &servers {
        assert_eq!(server.requests(), 10, "{}", server.name);
    }
    // Names are case-insensitive hosts.
    assert_eq!(client.get("http://WEB/").await.expect("get").status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_traffic_fails_no_get() {
    let mut servers = [
        TestServer::start("a", Behaviour::Ok).await,
        TestServer::start("b", Behaviour::Ok).await,
        TestServer::start("c", Behaviour::Ok).await,
    ];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let client = client_for(
        Config::default().with_attempt_timeout(Duration::from_secs(5)),
        &addrs,
    );
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, ok, failed, stop) = (client.clone(), ok.clone(), failed.clone(), stop.clone());
        workers.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match client.get("http://web/").await {
                    Ok(response) if response.status() == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    other => {
                        eprintln!("failed GET: {other:?}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
    }
    common::wait_until("200 GETs", Duration::from_secs(30), || {
        ok.load(Ordering::SeqCst) >= 200
    })
    .await;
    servers[1].kill();
    let at_kill = ok.load(Ordering::SeqCst);
    common::wait_until("400 more GETs", Duration::from_secs(30), || {
        ok.load(Ordering::SeqCst) >= at_kill + 400
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    while workers.join_next().await.is_some() {}
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no GET may fail");
    assert!(servers[1].requests() > 0, "the killed server served before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_not_retried_after_its_body_was_sent() {
    let servers = [
        TestServer::start("a", Behaviour::DropAfterBody).await,
        TestServer::start("b", Behaviour::DropAfterBody).await,
    ];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let client = client_for(Config::default(), &addrs);
    let error = post(&client, "http://web/orders", "one order")
        .await
        .expect_err("the connection drops");
    assert_eq!(failures(&error), [AttemptFailure::Transport]);
    let bodies: u64 = servers.iter().map(TestServer::bodies).sum();
    assert_eq!(bodies, 1, "the order reached exactly one server, once");
    assert!(error.to_string().contains("service `web`"), "{error}");

    // The same failure on a GET is retried on the other instance (and back).
    let error = client.get("http://web/orders").await.expect_err("all drop");
    assert_eq!(failures(&error), [AttemptFailure::Transport; 3]);
    let Error::Attempts { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(source.reason(), GaveUp::MaxAttempts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_retried_when_nothing_was_sent() {
    let server = TestServer::start("ok", Behaviour::Ok).await;
    let addrs = vec![dead_addr().to_string(), server.addr.to_string()];
    let client = client_for(Config::default(), &addrs);
    let mut retried = 0;
    for n in 0..4 {
        let response = post(&client, "http://web/orders", format!("order {n}"))
            .await
            .expect("post");
        assert_eq!(response.status(), 200);
        let who = served(&response);
        assert_eq!(*who.addr, server.addr.to_string());
        if who.attempts == 2 {
            assert_eq!(*who.failed[0], addrs[0]);
            retried += 1;
        }
    }
    assert_eq!(server.bodies(), 4, "every order arrived once");
    assert!(
        retried >= 1,
        "round-robin sent some first attempts to the dead instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_is_never_retried() {
    let server = TestServer::start("ok", Behaviour::Ok).await;
    let dead = dead_addr().to_string();
    let client = client_for(Config::default(), std::slice::from_ref(&dead));
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok("part 1"), Ok("part 2")];
    let request = client
        .request(http::Method::PUT, "http://web/upload")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .build()
        .unwrap();
    let error = client.execute(request).await.expect_err("dead instance");
    assert_eq!(failures(&error), [AttemptFailure::Connect]);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_instance_is_skipped_and_its_answer_kept() {
    let sick = TestServer::start("sick", Behaviour::Status(503)).await;
    let well = TestServer::start("well", Behaviour::Ok).await;
    let addrs = vec![sick.addr.to_string(), well.addr.to_string()];
    let client = client_for(Config::default(), &addrs);
    for _ in 0..20 {
        let response = client.get("http://web/").await.expect("get");
        assert_eq!(response.status(), 200);
        assert_eq!(text(response).await, "hello from well");
    }
    assert!(sick.requests() >= 1, "round-robin tried the sick one");

    // Only the sick one: a GET tries 3 times, then returns its 503 answer; a POST once.
    let client = client_for(Config::default(), &[sick.addr.to_string()]);
    let before = sick.requests();
    let response = client.get("http://web/").await.expect("an answer");
    assert_eq!(response.status(), 503);
    assert_eq!(served(&response).attempts, 3);
    assert_eq!(text(response).await, "503 from sick");
    assert_eq!(sick.requests(), before + 3);
    let response = post(&client, "http://web/", "x").await.expect("an answer");
    assert_eq!(response.status(), 503);
    assert_eq!(served(&response).attempts, 1);
    assert_eq!(sick.requests(), before + 4);

    // A 500 is the application's answer: never retried.
    let broken = TestServer::start("broken", Behaviour::Status(500)).await;
    let client = client_for(Config::default(), &[broken.addr.to_string()]);
    let response = client.get("http://web/").await.expect("an answer");
    assert_eq!(response.status(), 500);
    assert_eq!(broken.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_per_attempt_and_in_total() {
    let hang = TestServer::start("hang", Behaviour::Hang).await;
    let well = TestServer::start("well", Behaviour::Ok).await;
    let addrs = vec![hang.addr.to_string(), well.addr.to_string()];
    let config = Config::default().with_attempt_timeout(Duration::from_millis(300));
    let client = client_for(config.clone(), &addrs);
    for _ in 0..4 {
        let response = client.get("http://web/").await.expect("get");
        assert_eq!(text(response).await, "hello from well");
    }
    // A POST that timed out may have been processed: not retried.
    let client = client_for(config, &[hang.addr.to_string()]);
    let error = post(&client, "http://web/", "x").await.expect_err("hangs");
    assert_eq!(failures(&error), [AttemptFailure::Timeout]);

    // The total budget cuts a long attempt short and still reports it.
    let config = Config::default()
        .with_attempt_timeout(Duration::from_secs(60))
        .with_timeout(Duration::from_millis(400));
    let client = client_for(config, &[hang.addr.to_string()]);
    let error = client.get("http://web/").await.expect_err("budget");
    let Error::Attempts { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(source.reason(), GaveUp::Timeout);
    assert_eq!(source.errors().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_and_empty_services_are_typed_errors() {
    let client = Client::new(Config::default().with_timeout(Duration::from_millis(300))).unwrap();
    client
        .add_instancer("web", "static://", FixedInstancer::new(vec![]))
        .unwrap();
    let started = std::time::Instant::now();
    // `localhost` resolves in DNS; as an unregistered name it must not be looked up.
    let error = client.get("http://localhost/").await.unwrap_err();
    assert!(
        matches!(&error, Error::UnknownService { name, .. } if name == "localhost"),
        "{error:?}"
    );
    let error = client.get("http://web/").await.unwrap_err();
    let Error::NoInstances {
        service,
        registry,
        waited,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!((service.as_str(), registry.as_str()), ("web", "static://"));
    assert_eq!(*waited, Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        client.get("ftp://web/").await,
        Err(Error::Invalid(_))
    ));
    assert!(
        client
            .add_instancer("web:80", "x", FixedInstancer::new(vec![]))
            .is_err()
    );

    // With passthrough, an unknown host is an ordinary request.
    let server = TestServer::start("plain", Behaviour::Ok).await;
    let client =
        Client::new(Config::default().with_unknown_names(sdkit_http::UnknownNames::Passthrough))
            .unwrap();
    let response = client
        .get(&format!("http://{}/", server.addr))
        .await
        .unwrap();
    assert_eq!(text(response).await, "hello from plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_is_a_tower_service_over_http_requests() {
    use sdkit_core::Factory;
    use tower::ServiceExt;
    let server = TestServer::start("svc", Behaviour::Ok).await;
    let factory = sdkit_http::EndpointFactory::new(reqwest::Client::new(), &Config::default());
    let endpoint = factory
        .make(&Instance::new("svc-1", format!("http://{}", server.addr)))
        .unwrap();
    let request = http::Request::get("/relative?q=1")
        .header("x-test", "42")
        .body(String::new())
        .unwrap();
    let response = endpoint.clone().oneshot(request).await.expect("call");
    assert_eq!(response.headers()["x-test-echo"], "42");
    assert_eq!(text(response).await, "hello from svc");
    // An absolute URI keeps its path; scheme and authority come from the instance.
    let request = http::Request::get("http://elsewhere.invalid/x")
        .body(Vec::new())
        .unwrap();
    let response = endpoint.oneshot(request).await.expect("call");
    assert_eq!(response.url().as_str(), format!("http://{}/x", server.addr));
    assert!(factory.make(&Instance::from_addr("ftp://x:1")).is_err());
    assert!(factory.make(&Instance::from_addr("nohost")).is_err());
}

/// With a request hash header and a consistent-hashing balancer, every request of one user goes
/// to one server and the users spread over all three; when a user's server answers 503 the
/// retry takes the key's next server, and keeps to it; requests without the header spread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_hash_header_keeps_each_user_on_one_server() {
    use sdkit_core::lb::hash::Maglev;
    use std::collections::{BTreeMap, BTreeSet};
    let servers = [
        TestServer::start("a", Behaviour::Ok).await,
        TestServer::start("b", Behaviour::Ok).await,
        TestServer::start("c", Behaviour::Status(503)).await,
    ];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let client = Client::new(
        Config::default().with_request_hash_header(http::HeaderName::from_static("x-user")),
    )
    .expect("client")
    .with_balancer(Arc::new(|set| Arc::new(Maglev::new(set))));
    client
        .add_instancer(
            "web",
            format!("static://{}", addrs.join(",")),
            instances(&addrs),
        )
        .expect("add");
    let mut by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut retried = 0;
    for round in 0..4 {
        for user in 0..40 {
            let user = format!("user-{user}");
            let request = client
                .request(http::Method::GET, "http://web/hello")
                .header("x-user", &user)
                .build()
                .expect("request");
            let response = client.execute(request).await.expect("get");
            assert_eq!(response.status(), 200, "{user}, round {round}");
            let who = served(&response);
            if who.attempts > 1 {
                retried += 1;
            }
            by_user
                .entry(user)
                .or_default()
                .insert(who.addr.to_string());
        }
    }
    for (user, reached) in &by_user {
        assert_eq!(reached.len(), 1, "{user} reached {reached:?}");
    }
    let reached: BTreeSet<&String> = by_user.values().flatten().collect();
    assert_eq!(
        reached.len(),
        2,
        "only the two healthy servers answer: {reached:?}"
    );
    assert!(
        retried > 0,
        "some users live on the failing server and were retried"
    );
    // Without the header: a random hash each, so requests spread.
    let mut unkeyed = BTreeSet::new();
    for _ in 0..40 {
        let response = client.get("http://web/hello").await.expect("get");
        unkeyed.insert(served(&response).addr.to_string());
    }
    assert_eq!(unkeyed.len(), 2, "{unkeyed:?}");
}
