//! Helpers shared by the ZooKeeper integration tests: fast timings, a plain client that changes
//! the tree behind the backend's back, and waiting for a snapshot that satisfies a condition.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sdkit_core::{Backoff, Instance, Snapshot, Subscription};
use sdkit_zookeeper::{Config, InstancerConfig, RegistrarConfig};
use zookeeper_client as zk;

/// Generous "eventually" bound: tests must pass on a loaded machine.
pub const EVENTUALLY: Duration = Duration::from_secs(40);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sdkit_zookeeper=debug,sdkit_core=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Fast timings for tests: a short session, quick retries.
pub fn config(servers: Vec<String>) -> Config {
    Config::new(servers)
        .with_session_timeout(Duration::from_secs(4))
        .with_connect_timeout(Duration::from_secs(5))
        .with_request_timeout(Duration::from_secs(3))
}

pub fn fast() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(500))
}

pub fn watch(path: &str) -> InstancerConfig {
    InstancerConfig::new(path).with_backoff(fast())
}

pub fn register(path: &str, instance: Instance) -> RegistrarConfig {
    RegistrarConfig::new(path, instance)
        .with_backoff(fast())
        .with_verify_interval(Duration::from_secs(5))
}

/// The instance ids of a snapshot.
pub fn ids(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot
        .instances()
        .iter()
        .map(|i| i.id().to_owned())
        .collect()
}

pub fn set<const N: usize>(ids: [&str; N]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits for a snapshot satisfying `pred`, panicking with `what` and the last state otherwise.
pub async fn wait_for(
    sub: &mut Subscription,
    what: &str,
    pred: impl FnMut(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    sub.wait_for(EVENTUALLY, pred)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

/// A plain zookeeper-client session, retried until the ensemble answers.
pub async fn raw(connect: &str) -> zk::Client {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        let attempt = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(connect);
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok(client)) => return client,
            other if tokio::time::Instant::now() > deadline => {
                panic!("no raw session with {connect}: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Creates `path` (and its parents) with `data`, persistent.
pub async fn put(client: &zk::Client, path: &str, data: &[u8]) {
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    if let Some((parent, _)) = path.rsplit_once('/')
        && !parent.is_empty()
    {
        client.mkdir(parent, &open).await.expect("mkdir");
    }
    match client.create(path, data, &open).await {
        Ok(_) => {}
        Err(zk::Error::NodeExists) => {
            client.set_data(path, data, None).await.expect("set data");
        }
        Err(e) => panic!("create {path}: {e}"),
    }
}

/// The children of `path` (empty when it does not exist).
pub async fn children(client: &zk::Client, path: &str) -> BTreeSet<String> {
    match client.list_children(path).await {
        Ok(c) => c.into_iter().collect(),
        Err(zk::Error::NoNode) => BTreeSet::new(),
        Err(e) => panic!("list {path}: {e}"),
    }
}
