//! `sdkit call TARGET --grpc [SERVICE]` against real tonic servers serving the standard health
//! service: the spread report, pick_first, exit codes, and a malformed service config.

use std::net::SocketAddr;
use std::process::Output;

use tonic_health::ServingStatus;

/// A tonic server with only the health service: `greeter.Greeter` has `status`.
async fn health_server(status: ServingStatus) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("greeter.Greeter", status).await;
    tokio::spawn(async move {
        // Keep the reporter alive as long as the server.
        let _reporter = reporter;
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    addr
}

fn unused_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn sdkit(args: &[&str]) -> (Output, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sdkit"))
        .args(args)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run sdkit");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

fn served(text: &str, addr: SocketAddr) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains(&addr.to_string()) && l.contains("served"))
        .unwrap_or_else(|| panic!("{addr} missing: {text}"));
    line.split_whitespace()
        .skip_while(|w| *w != addr.to_string())
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_checks_spread_over_the_instances() {
    let (a, b) = (
        health_server(ServingStatus::Serving).await,
        health_server(ServingStatus::Serving).await,
    );
    let dead = unused_addr();
    let url = format!("static://{a},{b},{dead}");
    let (output, text) = sdkit(&["call", &url, "--grpc", "-n", "60", "-c", "3"]).await;
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("grpc.health.v1.Health/Check (server) × 60 over 3 instances (round_robin"),
        "{text}"
    );
    assert!(text.contains("60 ok, 0 failed"), "{text}");
    assert_eq!(served(&text, a) + served(&text, b), 60, "{text}");
    assert!(
        served(&text, a) >= 20 && served(&text, b) >= 20,
        "spread: {text}"
    );
    assert!(text.contains("latency p50"), "{text}");

    // A named service, and pick_first: everything on the first in order.
    let (output, text) = sdkit(&[
        "call",
        &format!("static://{a},{b}"),
        "--grpc",
        "greeter.Greeter",
        "-n",
        "20",
        "--service-config",
        r#"{"loadBalancingConfig": [{"pick_first": {}}]}"#,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{text}");
    let (first, second) = if a.to_string() < b.to_string() {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(served(&text, first), 20, "{text}");
    assert!(!text.contains(&second.to_string()), "{text}");
}

/// The calls `addr` served, 0 when the report does not list it.
fn served_or_zero(text: &str, addr: SocketAddr) -> u64 {
    if text
        .lines()
        .any(|l| l.contains(&addr.to_string()) && l.contains("served"))
    {
        served(text, addr)
    } else {
        0
    }
}

/// `--key` gives every call the same request hash: under `maglev` or `ring_hash` all calls go
/// to one instance; without it they spread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_with_a_key_go_to_one_instance() {
    let (a, b, c) = (
        health_server(ServingStatus::Serving).await,
        health_server(ServingStatus::Serving).await,
        health_server(ServingStatus::Serving).await,
    );
    let url = format!("static://{a},{b},{c}");
    for lb in ["maglev", "ring_hash"] {
        for key in ["user-1", "user-2"] {
            let (output, text) = sdkit(&[
                "call", &url, "--grpc", "-n", "30", "-c", "3", "--lb", lb, "--key", key,
            ])
            .await;
            assert_eq!(output.status.code(), Some(0), "{text}");
            let counts = [a, b, c].map(|addr| served_or_zero(&text, addr));
            assert_eq!(
                counts.iter().filter(|&&n| n > 0).count(),
                1,
                "{lb} {key}: {text}"
            );
            assert_eq!(counts.iter().sum::<u64>(), 30, "{text}");
        }
        let (output, text) =
            sdkit(&["call", &url, "--grpc", "-n", "30", "-c", "3", "--lb", lb]).await;
        assert_eq!(output.status.code(), Some(0), "{text}");
        let counts = [a, b, c].map(|addr| served_or_zero(&text, addr));
        assert!(
            counts.iter().filter(|&&n| n > 0).count() >= 2,
            "{lb}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_serving_and_unknown_services_fail_with_exit_1() {
    let sick = health_server(ServingStatus::NotServing).await;
    let (output, text) = sdkit(&[
        "call",
        &format!("static://{sick}"),
        "--grpc",
        "greeter.Greeter",
        "-n",
        "4",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("0 ok, 4 failed"), "{text}");
    assert!(text.contains("NOT_SERVING"), "{text}");

    let (output, text) = sdkit(&[
        "call",
        &format!("static://{sick}"),
        "--grpc",
        "nope.Nope",
        "-n",
        "2",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("NotFound"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_service_config_names_the_field() {
    let (output, text) = sdkit(&[
        "call",
        "static://127.0.0.1:1",
        "--grpc",
        "--service-config",
        r#"{"methodConfig": [{"name": [{}], "timeout": "soon"}]}"#,
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("methodConfig[0].timeout"), "{text}");
    // --service-config needs --grpc; a path and --grpc exclude each other.
    let (output, _) = sdkit(&[
        "call",
        "static://127.0.0.1:1",
        "/x",
        "--service-config",
        "{}",
    ])
    .await;
    assert_ne!(output.status.code(), Some(0));
    let (output, _) = sdkit(&["call", "static://127.0.0.1:1", "/x", "--grpc"]).await;
    assert_ne!(output.status.code(), Some(0));
}
