//! The same code, written once against `Target`, registers and watches on every registry
//! backend: the embedded discovery server, a real etcd, and the Consul API double.

use std::time::Duration;

use sdkit::{Instance, Target};
use sdkit_testkit::discovery::DiscoveryServer;
use sdkit_testkit::{ConsulDouble, EtcdCluster, EurekaDouble, ZooKeeper};

/// Registers one instance through `url`, waits for the watch to show it, deregisters it, and
/// waits for the watch to show it gone.
async fn register_watch_deregister(url: &str) {
    let target: Target = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
    let instancer = target.instancer().unwrap();
    let mut watch = instancer.subscribe();
    let instance = Instance::new("web-1", "127.0.0.1:18080").with_weight(3);
    let registrar = target.registrar(instance.clone()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), registrar.register())
        .await
        .unwrap_or_else(|_| panic!("{url}: not registered in time"))
        .unwrap();

    let seen = watch
        .wait_for(Duration::from_secs(20), |s| {
            s.instances().iter().any(|i| i.addr() == instance.addr())
        })
        .await
        .unwrap_or_else(|e| panic!("{url}: registration never seen: {e}"));
    let mine = seen
        .instances()
        .iter()
        .find(|i| i.addr() == instance.addr())
        .unwrap();
    assert_eq!(mine.weight(), 3, "{url}: weight carried through");

    registrar.deregister().await.unwrap();
    watch
        .wait_for(Duration::from_secs(20), |s| {
            !s.instances().iter().any(|i| i.addr() == instance.addr())
        })
        .await
        .unwrap_or_else(|e| panic!("{url}: deregistration never seen: {e}"));
    instancer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery() {
    let server = DiscoveryServer::start(sdkit_discovery_server::Server::builder().env("dev"))
        .await
        .expect("discovery server");
    let url = format!(
        "discovery://{}/demo.web?env=dev&scheme=http&self_discovery=false",
        server.addr()
    );
    register_watch_deregister(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd() {
    let etcd = EtcdCluster::single().expect("etcd");
    let url = format!("etcd://{}/services/web", etcd.client_addr(0));
    register_watch_deregister(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul() {
    let consul = ConsulDouble::start().await.expect("consul double");
    let url = format!("consul://{}/web?wait=2s&ttl=2s", consul.addr());
    register_watch_deregister(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper() {
    let zk = ZooKeeper::single().expect("zookeeper");
    let url = format!("zk://{}/services/web?ttl=4s", zk.connect_string());
    register_watch_deregister(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eureka() {
    let eureka = EurekaDouble::start().await.expect("eureka double");
    let url = format!(
        "eureka://{}/web?poll=200ms&heartbeat=1s&lease=5s",
        eureka.addr()
    );
    register_watch_deregister(&url).await;
}
