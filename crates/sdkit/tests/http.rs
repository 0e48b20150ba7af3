//! `sdkit::http` with a `Target` as the source of a name: the embedded discovery registry.

use std::convert::Infallible;
use std::time::Duration;

use sdkit::http::{Client, Config, Error};
use sdkit::{Instance, Target};
use sdkit_testkit::discovery::DiscoveryServer;

/// A one-route HTTP server answering `hello`.
async fn hello_server() -> std::net::SocketAddr {
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"hello"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_is_the_source_of_a_name() {
    let server = DiscoveryServer::start(sdkit_discovery_server::Server::builder().env("dev"))
        .await
        .expect("discovery server");
    let url = format!(
        "discovery://{}/demo.web?env=dev&scheme=http&self_discovery=false",
        server.addr()
    );
    let target: Target = url.parse().unwrap();
    let registrar = target
        .registrar(Instance::new("web-1", hello_server().await.to_string()))
        .unwrap();
    registrar.register().await.unwrap();

    let client = Client::new(Config::default().with_timeout(Duration::from_secs(20))).unwrap();
    client.add_service("web", &target).unwrap();
    let response = client.get("http://web/").await.expect("get");
    assert_eq!(response.text().await.unwrap(), "hello");

    // Errors name the registry as the target prints it (secrets redacted).
    let secret: Target = "consul://127.0.0.1:1/web?token=s3cret".parse().unwrap();
    let client = Client::new(Config::default().with_timeout(Duration::from_millis(200))).unwrap();
    client.add_service("web", &secret).unwrap();
    let error = client.get("http://web/").await.unwrap_err();
    assert!(matches!(error, Error::NoInstances { .. }), "{error:?}");
    assert!(error.to_string().contains("token=***"), "{error}");
    assert!(!error.to_string().contains("s3cret"), "{error}");
    registrar.deregister().await.unwrap();
}
