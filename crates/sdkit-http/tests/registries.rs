//! Name resolution through real registries: the embedded discovery registry over HTTP and a real
//! etcd, both reached through `sdkit::Target` URLs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Behaviour, TestServer, text};
use sdkit::{BoxError, Instance, Instancer, Target};
use sdkit_http::{Client, Config, Source};
use sdkit_testkit::EtcdCluster;
use sdkit_testkit::discovery::DiscoveryServer;

/// A `Target` as a name source (the facade implements this itself behind its `http` feature).
struct Registry(Target);

impl Source for Registry {
    fn registry(&self) -> String {
        self.0.to_string()
    }
    fn instancer(&self) -> Result<Box<dyn Instancer>, BoxError> {
        Ok(self.0.instancer()?)
    }
}

/// Registers two servers through `url`, resolves `http://web/` through the client, and sees
/// both answer; then deregisters one and sees only the other.
async fn resolve_through(url: &str) {
    let target: Target = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
    let servers = [
        TestServer::start("one", Behaviour::Ok).await,
        TestServer::start("two", Behaviour::Ok).await,
    ];
    let mut registrars = Vec::new();
    for (n, server) in servers.iter().enumerate() {
        let instance = Instance::new(format!("web-{n}"), server.addr.to_string());
        let registrar = target.registrar(instance).unwrap();
        tokio::time::timeout(Duration::from_secs(20), registrar.register())
            .await
            .unwrap_or_else(|_| panic!("{url}: not registered in time"))
            .unwrap();
        registrars.push(registrar);
    }
    let client = Client::new(Config::default().with_timeout(Duration::from_secs(20))).unwrap();
    client
        .add_service("web", &Registry(target.clone()))
        .unwrap();
    // Both instances show up (the first snapshot may hold one of them).
    let set = client.endpoint_set("web").unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while set.load().len() < 2 {
            set.changed_since(set.version()).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{url}: both instances never seen"));
    let mut answers = BTreeSet::new();
    for _ in 0..6 {
        answers.insert(text(client.get("http://web/").await.expect("get")).await);
    }
    assert_eq!(
        answers.into_iter().collect::<Vec<_>>(),
        ["hello from one", "hello from two"],
        "{url}"
    );

    registrars[1].deregister().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while set.load().len() != 1 {
            set.changed_since(set.version()).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{url}: deregistration never seen"));
    for _ in 0..4 {
        assert_eq!(
            text(client.get("http://web/").await.expect("get")).await,
            "hello from one"
        );
    }
    registrars[0].deregister().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_through_the_discovery_registry() {
    let server = DiscoveryServer::start(sdkit_discovery_server::Server::builder().env("dev"))
        .await
        .expect("discovery server");
    let url = format!(
        "discovery://{}/demo.web?env=dev&scheme=http&self_discovery=false",
        server.addr()
    );
    resolve_through(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_through_etcd() {
    let etcd = EtcdCluster::single().expect("etcd");
    let url = format!("etcd://{}/services/web", etcd.client_addr(0));
    resolve_through(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_a_typed_error_naming_it_redacted() {
    let dead = common::dead_addr();
    let target: Target = format!("etcd://svc:s3cret@{dead}/services/web")
        .parse()
        .unwrap();
    let client = Client::new(Config::default().with_timeout(Duration::from_millis(500))).unwrap();
    client.add_service("web", &Registry(target)).unwrap();
    let error = client.get("http://web/").await.expect_err("no instance");
    let text = error.to_string();
    assert!(text.starts_with("service `web` (etcd://svc:***@"), "{text}");
    assert!(text.contains("no instance ready within 500ms"), "{text}");
    assert!(
        !text.contains("s3cret") && !format!("{error:?}").contains("s3cret"),
        "{text}"
    );
}
