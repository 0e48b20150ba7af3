//! HTTPS: instances reached over TLS with a test CA; the instance's host is the TLS name.

mod common;

use common::{Behaviour, TestCa, TestServer, text};
use sdkit_core::{FixedInstancer, Instance};
use sdkit_http::{AttemptError, AttemptFailure, Client, Config, Error, Scheme};

fn trusting(ca: &TestCa) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).expect("ca pem");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .build()
        .expect("client")
}

/// A client reaching `web` at `localhost:port` with the https scheme configured.
fn https_localhost(http: reqwest::Client, port: u16) -> Client {
    let client = Client::with_reqwest(Config::default().with_scheme(Scheme::Https), http);
    let instance = Instance::from_addr(format!("localhost:{port}"));
    client
        .add_instancer("web", "static://", FixedInstancer::new(vec![instance]))
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_instances_with_a_test_ca() {
    let ca = TestCa::new();
    let a = TestServer::start_tls("a", Behaviour::Ok, ca.server.clone()).await;
    let b = TestServer::start_tls("b", Behaviour::Ok, ca.server.clone()).await;

    // Addresses written with https://: the host (`localhost`) is the TLS name.
    let client = Client::with_reqwest(Config::default(), trusting(&ca));
    let instances = vec![
        Instance::new("a", format!("https://localhost:{}", a.addr.port())),
        Instance::new("b", format!("https://localhost:{}", b.addr.port())),
    ];
    client
        .add_instancer("web", "static://", FixedInstancer::new(instances))
        .unwrap();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let response = client.get("http://web/secure").await.expect("get");
        assert_eq!(response.url().scheme(), "https");
        bodies.push(text(response).await);
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies, ["hello from a", "hello from b"]);

    // Plain host:port addresses with the https scheme configured.
    let client = https_localhost(trusting(&ca), a.addr.port());
    assert_eq!(
        text(client.get("http://web/").await.expect("get")).await,
        "hello from a"
    );

    // A client that does not trust the test CA refuses the handshake: nothing was sent.
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    let client = https_localhost(untrusting, a.addr.port());
    let error = client.get("http://web/").await.expect_err("untrusted");
    assert!(matches!(error, Error::Attempts { .. }), "{error:?}");
    for attempt in error.attempts() {
        assert_eq!(
            AttemptError::find(attempt).unwrap().failure(),
            AttemptFailure::Connect
        );
    }
    assert_eq!(
        a.requests() + b.requests(),
        5,
        "refused handshakes sent no request"
    );
}
