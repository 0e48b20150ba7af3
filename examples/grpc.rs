//! gRPC over service discovery — the seeds' demo in Rust: three greeter servers register in a
//! registry, a client dials one URL and round-robins over them; then one server shuts down
//! (deregistering before it drains) and the client keeps going on the other two.
//!
//! ```sh
//! cargo run -p sdkit-grpc --example grpc        # the embedded discovery registry, in-process
//! # against a running etcd (or any registry with a registrar: discovery://, consul://):
//! cargo run -p sdkit-grpc --example grpc -- etcd://127.0.0.1:2379/services/greeter
//! ```
//!
//! The greeter is `crates/sdkit-grpc/proto/greeter.proto`, compiled by that crate's build script.

use std::time::Duration;

use sdkit::grpc::{Config, Server};
use sdkit::{BoxError, Instance, Target};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

mod greeter {
    tonic::include_proto!("greeter");
}

use greeter::greeter_client::GreeterClient;
use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest};

struct Hello(String);

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: format!("hello {}", request.into_inner().name),
            server: self.0.clone(),
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The registry: the URL from the command line, or the embedded discovery server.
    let mut embedded = None;
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            let server = sdkit_discovery_server::Server::builder()
                .env("dev")
                .build()?;
            let handle = server.handle();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            embedded = Some((handle, tokio::spawn(server.serve(listener))));
            println!("embedded discovery registry on {addr}");
            // `scheme=grpc` is the default: instances are registered and read as grpc://host:port.
            format!("discovery://{addr}/demo.greeter?env=dev&self_discovery=false")
        }
    };
    let target: Target = url.parse()?;

    // Three servers: bind, register through the target, serve until told to stop.
    let mut stops = Vec::new();
    let mut serving = Vec::new();
    for i in 1..=3 {
        let server = Server::bind("127.0.0.1:0".parse()?).await?;
        let name = format!("greeter-{i}");
        let registrar = target.registrar(Instance::new(&name, server.local_addr().to_string()))?;
        println!("{name} serves on {}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        serving.push(tokio::spawn(async move {
            let routes = Routes::new(GreeterServer::new(Hello(name)));
            server
                .serve(routes, registrar.as_ref(), async {
                    let _ = stopped.await;
                })
                .await
        }));
    }

    // The client: one URL, round-robin, a retry policy for UNAVAILABLE.
    let channel = sdkit::grpc::channel_with(
        &url,
        Config::default().with_service_config(
            r#"{"loadBalancingConfig": [{"round_robin": {}}],
                "methodConfig": [{"name": [{"service": "greeter.Greeter"}], "timeout": "2s",
                  "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
                                  "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
        ),
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while channel.endpoints().len() < 3 {
        if tokio::time::Instant::now() > deadline {
            return Err("the three servers did not show up in the registry within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = GreeterClient::new(channel.clone());
    for n in 1..=6 {
        let reply = client
            .say_hello(HelloRequest {
                name: format!("call {n}"),
            })
            .await?;
        let reply = reply.into_inner();
        println!("{} ← {}", reply.message, reply.server);
    }

    // greeter-1 leaves: it deregisters first, then drains; calls carry on over the others.
    let _ = stops.remove(0).send(());
    serving.remove(0).await??;
    println!("greeter-1 stopped");
    for n in 7..=10 {
        let reply = client
            .say_hello(HelloRequest {
                name: format!("call {n}"),
            })
            .await?;
        println!("{} ← {}", reply.get_ref().message, reply.get_ref().server);
    }

    for stop in stops {
        let _ = stop.send(());
    }
    for task in serving {
        task.await??;
    }
    if let Some((handle, task)) = embedded {
        handle.shutdown();
        task.await??;
    }
    Ok(())
}
