//! The server helper against the embedded discovery registry: it registers while serving, and
//! on shutdown deregisters *before* it stops answering.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::eventually;
use common::greeter::HelloRequest;
use common::greeter::greeter_client::GreeterClient;
use common::greeter::greeter_server::GreeterServer;
use sdkit::registrar::BoxFuture;
use sdkit::{Instance, Registrar, RegistrarError, Target};
use sdkit_discovery_server::Server as Registry;
use sdkit_grpc::Server;
use sdkit_testkit::discovery::DiscoveryServer;
use tonic::service::Routes;

/// Wraps the real registrar; at deregistration, calls the server directly and remembers whether
/// it still answered.
struct Observing {
    inner: Box<dyn Registrar>,
    addr: SocketAddr,
    answered_at_deregister: Arc<Mutex<Option<bool>>>,
}

impl Registrar for Observing {
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.inner.register()
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        Box::pin(async move {
            let answered = async {
                let channel =
                    tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
                        .ok()?
                        .connect()
                        .await
                        .ok()?;
                GreeterClient::new(channel)
                    .say_hello(HelloRequest {
                        name: "still there?".into(),
                    })
                    .await
                    .ok()
            }
            .await
            .is_some();
            *self.answered_at_deregister.lock().unwrap() = Some(answered);
            self.inner.deregister().await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_serves_then_deregisters_before_draining() {
    let registry = DiscoveryServer::start(Registry::builder().env("dev"))
        .await
        .expect("registry");
    let url = format!(
        "discovery://{}/demo.greeter?env=dev&self_discovery=false",
        registry.addr()
    );
    let target: Target = url.parse().unwrap();

    let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.local_addr();
    let answered = Arc::new(Mutex::new(None));
    let registrar = Observing {
        inner: target
            .registrar(Instance::new("greeter-1", addr.to_string()))
            .unwrap(),
        addr,
        answered_at_deregister: Arc::clone(&answered),
    };
    let hello = common::Hello::named("greeter-1");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        server
            .serve(Routes::new(GreeterServer::new(hello)), &registrar, async {
                let _ = stopped.await;
            })
            .await
    });

    // Clients find it through the registry and call it.
    let channel = sdkit::grpc::channel(&url).unwrap();
    eventually("registered", Duration::from_secs(20), async || {
        channel.endpoints().len() == 1
    })
    .await;
    let mut client = GreeterClient::new(channel.clone());
    let reply = client
        .say_hello(HelloRequest { name: "x".into() })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().server, "greeter-1");

    stop.send(()).unwrap();
    serving.await.unwrap().expect("served and stopped cleanly");
    assert_eq!(
        *answered.lock().unwrap(),
        Some(true),
        "deregistered while still serving"
    );
    eventually(
        "gone from the registry",
        Duration::from_secs(20),
        async || channel.endpoints().is_empty(),
    )
    .await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
