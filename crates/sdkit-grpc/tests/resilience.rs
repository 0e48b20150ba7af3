//! Failure handling with real tonic servers on loopback (a fixed instance set): transparent
//! retry past dead endpoints, retry policies on UNAVAILABLE, waiting for a ready endpoint up to
//! the deadline, TLS, and the channel's tasks ending when it is dropped.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::greeter::HelloRequest;
use common::greeter::greeter_client::GreeterClient;
use common::{Options, TestServer, eventually, hello};
use sdkit::{FixedInstancer, Instance};
use sdkit_grpc::{Channel, ClientTlsConfig, Config, Served};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// A loopback address nothing listens on (bound, then released).
fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn fixed(instances: Vec<Instance>) -> FixedInstancer {
    FixedInstancer::new(instances)
}

/// Whether the endpoint of the instance with identity `id` is ready now.
fn is_ready(channel: &Channel, id: &str) -> bool {
    channel
        .endpoints()
        .iter()
        .find(|e| e.instance().id() == id)
        .unwrap_or_else(|| panic!("no endpoint {id}"))
        .service()
        .is_ready()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_transparently_and_marked_not_ready() {
    let a = TestServer::start("a");
    let b = TestServer::start("b");
    let dead = dead_addr();
    // Sorted by identity: the dead one is first in line.
    let instancer = fixed(vec![
        Instance::new("0-dead", dead.to_string()),
        Instance::new("1-a", a.addr.to_string()),
        Instance::new("2-b", b.addr.to_string()),
    ]);
    let channel = Channel::new(&instancer, Config::default()).unwrap();
    channel.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(channel.clone());
    for _ in 0..300 {
        hello(&mut client)
            .await
            .expect("no call fails: connect errors move to another endpoint");
    }
    assert_eq!(a.served() + b.served(), 300);
    assert!(
        !is_ready(&channel, "0-dead"),
        "the dead endpoint is marked not ready"
    );
    assert!(
        channel
            .endpoints()
            .iter()
            .filter(|e| e.service().is_ready())
            .count()
            == 2
    );
    // The served-by extension says who answered, after how many attempts.
    let response = client
        .say_hello(HelloRequest { name: "x".into() })
        .await
        .unwrap();
    let served = response
        .extensions()
        .get::<Served>()
        .expect("Served extension");
    assert_ne!(served.addr(), dead.to_string());
}

/// A one-connection HTTP/2 peer that completes the handshake, then closes the connection as
/// soon as the first request's HEADERS frame arrives: a server that dies under a call.
async fn dies_under_the_first_call() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PREFACE: usize = 24;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        drop(listener);
        // Our SETTINGS (empty).
        if socket
            .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .is_err()
        {
            return;
        }
        let mut seen = Vec::new();
        let mut at = PREFACE;
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            // Whole frames after the client's preface: 9-byte header, then the payload.
            while seen.len() >= at + 9 {
                let len = usize::from(seen[at]) << 16
                    | usize::from(seen[at + 1]) << 8
                    | usize::from(seen[at + 2]);
                let (kind, flags) = (seen[at + 3], seen[at + 4]);
                if seen.len() < at + 9 + len {
                    break;
                }
                at += 9 + len;
                match kind {
                    // HEADERS: the call is in flight; die under it.
                    1 => return,
                    // SETTINGS (not an ACK): acknowledge.
                    4 if flags & 1 == 0
                        && socket
                            .write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0])
                            .await
                            .is_err() =>
                    {
                        return;
                    }
                    _ => {}
                }
            }
        }
    });
    addr
}

/// A connection that ends marks its endpoint not ready when the transport meets the end, before
/// the call on it fails: the caller's very next call already goes elsewhere. Ten rounds, each
/// with a server that dies under the first call of a `pick_first` channel (no retry policy):
/// that call fails, its endpoint is not ready by the time the error is seen, and the next call
/// is served by the other server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_ends_marks_its_endpoint_not_ready_before_the_call_fails() {
    let b = TestServer::start("b");
    for round in 0..10 {
        let dying = dies_under_the_first_call().await;
        let instancer = fixed(vec![
            Instance::new("1-dying", dying.to_string()),
            Instance::new("2-b", b.addr.to_string()),
        ]);
        let channel = Channel::new(
            &instancer,
            Config::default().with_service_config(r#"{"loadBalancingConfig":[{"pick_first":{}}]}"#),
        )
        .unwrap();
        channel.ready(Duration::from_secs(5)).await.unwrap();
        let mut client = GreeterClient::new(channel.clone());
        let status = hello(&mut client)
            .await
            .expect_err("the server dies under the call");
        assert!(
            !is_ready(&channel, "1-dying"),
            "round {round}: the call failed ({status}) while its endpoint still looked ready"
        );
        assert_eq!(
            hello(&mut client).await.expect("the next call is served"),
            "b",
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_retried_by_the_policy_and_only_then() {
    let warming = TestServer::start_with(
        "warming",
        Options {
            unavailable_first: 1000,
            ..Default::default()
        },
    );
    let healthy = TestServer::start("healthy");
    let instancer = fixed(vec![
        Instance::new("0-warming", warming.addr.to_string()),
        Instance::new("1-healthy", healthy.addr.to_string()),
    ]);
    // Without a retry policy, round-robin's first pick (the warming one) fails.
    let plain = Channel::new(&instancer, Config::default()).unwrap();
    plain.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(plain);
    let status = hello(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("warming up"), "{status}");

    let config = Config::default().with_service_config(r#"{"methodConfig":[{"name":[{"service":"greeter.Greeter","method":"SayHello"}],
        "retryPolicy":{"maxAttempts":3,"initialBackoff":"0.001s","maxBackoff":"0.01s","backoffMultiplier":2,
        "retryableStatusCodes":["UNAVAILABLE"]}}]}"#);
    let retrying = Channel::new(&instancer, config).unwrap();
    retrying.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(retrying);
    for _ in 0..50 {
        assert_eq!(hello(&mut client).await.unwrap(), "healthy");
    }
    assert_eq!(healthy.served(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_none_ready_a_call_waits_up_to_its_deadline_then_fails_clearly() {
    let instancer = fixed(vec![
        Instance::from_addr(dead_addr().to_string()),
        Instance::from_addr(dead_addr().to_string()),
    ]);
    let channel = Channel::new(
        &instancer,
        Config::default().with_ready_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    channel.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(channel.clone());

    let mut request = tonic::Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(Duration::from_millis(400));
    let started = std::time::Instant::now();
    let status = client.say_hello(request).await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited up to the deadline"
    );
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(
        status.message().contains("none of 2 endpoints is ready"),
        "{status}"
    );

    // Without a deadline: the channel's ready timeout, then UNAVAILABLE.
    let status = hello(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(
        status.message().contains("none of 2 endpoints is ready"),
        "{status}"
    );
    assert!(
        status.message().contains("/greeter.Greeter/SayHello"),
        "{status}"
    );

    // An empty set says so.
    let empty = FixedInstancer::new(Vec::new());
    let channel = Channel::new(
        &empty,
        Config::default().with_ready_timeout(Duration::from_millis(100)),
    )
    .unwrap();
    let status = hello(&mut GreeterClient::new(channel)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("no endpoints"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_proceeds_once_a_server_comes_up() {
    let addr = dead_addr();
    let instancer = fixed(vec![Instance::from_addr(addr.to_string())]);
    let channel = Channel::new(&instancer, Config::default()).unwrap();
    channel.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(channel.clone());
    // The first call finds nothing listening: the endpoint is marked not ready.
    let mut request = tonic::Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(Duration::from_millis(200));
    assert!(client.say_hello(request).await.is_err());
    assert!(!channel.endpoints().get(0).unwrap().service().is_ready());
    // A call with a long deadline waits; the server comes up; the call succeeds.
    let waiting = tokio::spawn(async move {
        let mut request = tonic::Request::new(HelloRequest { name: "x".into() });
        request.set_timeout(Duration::from_secs(30));
        client
            .say_hello(request)
            .await
            .map(|r| r.into_inner().server)
    });
    let _server = TestServer::start_with(
        "late",
        Options {
            addr: Some(addr),
            ..Default::default()
        },
    );
    assert_eq!(waiting.await.unwrap().expect("served once up"), "late");
    assert!(channel.endpoints().get(0).unwrap().service().is_connected());
}

/// Accepts connections on `listener` and answers each with an HTTP/1.1 error, as a port whose
/// owner does not speak HTTP/2 would; counts the connections. Aborting the task closes the
/// listener.
fn not_http2(listener: tokio::net::TcpListener) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (accepted, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_does_not_speak_http2_keeps_the_endpoint_not_ready_a_server_makes_it_ready() {
    // The port stays ours throughout: bound but not listening (connections are refused), then
    // listening without speaking HTTP/2.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let instancer = fixed(vec![Instance::from_addr(addr.to_string())]);
    let backoff = sdkit::Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
    let channel = Channel::new(&instancer, Config::default().with_backoff(backoff)).unwrap();
    channel.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(channel.clone());
    let mut request = tonic::Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(Duration::from_millis(200));
    assert!(client.say_hello(request).await.is_err());
    let endpoint = || channel.endpoints().get(0).unwrap().service().clone();
    assert!(!endpoint().is_ready());
    // Something that is not an HTTP/2 server takes the port: the probes connect, and the
    // endpoint stays not ready.
    let (probes, squatter) = not_http2(socket.listen(64).unwrap());
    eventually(
        "five probes of the squatter",
        Duration::from_secs(10),
        async || probes.load(Ordering::SeqCst) >= 5,
    )
    .await;
    assert!(
        !endpoint().is_ready(),
        "a TCP connect alone does not make a gRPC endpoint ready"
    );
    // The squatter goes, a gRPC server comes: the next probe makes the endpoint ready, without
    // any call.
    squatter.abort();
    let mut server = TestServer::start_with(
        "late",
        Options {
            addr: Some(addr),
            ..Default::default()
        },
    );
    eventually(
        "ready once a server answers",
        Duration::from_secs(10),
        async || endpoint().is_ready(),
    )
    .await;
    assert_eq!(server.served(), 0, "the probe sends no request");
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["greeter.test".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let identity = tonic::transport::Identity::from_pem(cert.pem(), key.serialize_pem());
    let tls = || Some(tonic::transport::ServerTlsConfig::new().identity(identity.clone()));
    let a = TestServer::start_with(
        "tls-a",
        Options {
            tls: tls(),
            ..Default::default()
        },
    );
    let b = TestServer::start_with(
        "tls-b",
        Options {
            tls: tls(),
            ..Default::default()
        },
    );
    let instancer = fixed(vec![
        Instance::from_addr(a.addr.to_string()),
        // An instance may publish its address as a grpcs:// URL.
        Instance::from_addr(format!("grpcs://{}", b.addr)),
    ]);
    let client_tls = ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca.pem()))
        .domain_name("greeter.test");
    let channel = Channel::new(&instancer, Config::default().with_tls(client_tls)).unwrap();
    channel.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(channel);
    for _ in 0..10 {
        hello(&mut client).await.expect("TLS call");
    }
    assert_eq!((a.served(), b.served()), (5, 5));

    // Without the CA the handshake fails: the call fails, nothing is served.
    let untrusted = Channel::new(
        &instancer,
        Config::default()
            .with_tls(ClientTlsConfig::new().domain_name("greeter.test"))
            .with_ready_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    untrusted.ready(Duration::from_secs(5)).await.unwrap();
    assert!(hello(&mut GreeterClient::new(untrusted)).await.is_err());
    assert_eq!(a.served() + b.served(), 10);

    // A grpcs:// address without TLS configured is refused by the factory (skipped, logged).
    let plain = Channel::new(
        &fixed(vec![Instance::from_addr(format!("grpcs://{}", b.addr))]),
        Config::default(),
    )
    .unwrap();
    let endpoints = plain.ready(Duration::from_secs(5)).await.unwrap();
    assert!(endpoints.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_channel_ends_its_tasks_and_connections() {
    let servers: Vec<TestServer> = (0..3)
        .map(|i| TestServer::start(&format!("s{i}")))
        .collect();
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let instancer = fixed(
        servers
            .iter()
            .map(|s| Instance::from_addr(s.addr.to_string()))
            .collect(),
    );
    let channel = Channel::new(&instancer, Config::default()).unwrap();
    channel.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(channel.clone());
    for _ in 0..30 {
        hello(&mut client).await.unwrap();
    }
    assert!(
        channel
            .endpoints()
            .iter()
            .all(|e| e.service().is_connected())
    );
    let during = metrics.num_alive_tasks();
    assert!(
        during >= before + 3 * 2,
        "endpointer, reconnect and connection tasks run: {before} → {during}"
    );
    drop(client);
    drop(channel);
    eventually(
        "every task of the channel ended",
        Duration::from_secs(10),
        async || metrics.num_alive_tasks() <= before,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_connector_opens_every_connection() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let a = TestServer::start("a");
    let b = TestServer::start("b");
    let connects = Arc::new(AtomicUsize::new(0));
    let counting = {
        let connects = Arc::clone(&connects);
        tower::service_fn(move |uri: http::Uri| {
            let connects = Arc::clone(&connects);
            async move {
                connects.fetch_add(1, Ordering::Relaxed);
                let authority = uri.authority().map(ToString::to_string).unwrap_or_default();
                let stream = tokio::net::TcpStream::connect(authority).await?;
                stream.set_nodelay(true)?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        })
    };
    let instancer = fixed(vec![
        Instance::from_addr(a.addr.to_string()),
        Instance::from_addr(b.addr.to_string()),
    ]);
    let config = Config::default().with_connector(sdkit_grpc::Connector::new(counting));
    let channel = Channel::new(&instancer, config).unwrap();
    channel.ready(Duration::from_secs(5)).await.unwrap();
    let mut client = GreeterClient::new(channel);
    for _ in 0..20 {
        hello(&mut client)
            .await
            .expect("call over the user's connector");
    }
    assert_eq!((a.served(), b.served()), (10, 10));
    assert_eq!(
        connects.load(Ordering::Relaxed),
        2,
        "one connection per endpoint, both by the user connector"
    );
}
