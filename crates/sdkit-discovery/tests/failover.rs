//! The last good set across a failover between two registries and across a restart that no
//! request saw fail: the watcher never publishes an empty set while the registrar registers
//! again, and publishes it only when the app is still unknown after `unknown_grace`.
//!
//! Two embedded `sdkit-discovery-server`s over real HTTP on loopback. They are not replicas
//! of each other (the embedded server does not replicate), so the node a watcher fails over to
//! knows the app only once the registrar registers there.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sdkit_core::{Backoff, Instancer as _, Registrar as _, Snapshot, Subscription};
use sdkit_discovery::{Client, Config, Instancer, InstancerConfig, Registrar, RegistrarConfig};
use sdkit_discovery_server::Server;
use sdkit_testkit::discovery::{CountingProxy, DiscoveryServer};
use sdkit_testkit::wait::{EVENTUALLY, eventually, wait_for};
use tokio::task::JoinHandle;

mod common;

const APP: &str = "demo.failover";

fn server() -> sdkit_discovery_server::Builder {
    Server::builder()
        .env("dev")
        .zone("sh001")
        .hold(Duration::from_millis(500))
}

fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(200))
}

fn config(nodes: &[String], host: &str) -> Config {
    Config::default()
        .with_nodes(nodes.iter().cloned())
        .with_env("dev")
        .with_zone("sh001")
        .with_hostname(host)
        .with_self_discovery(false)
        .with_backoff(backoff())
        .with_request_timeout(Duration::from_secs(5))
}

/// A registrar of [`APP`] on a client of `nodes`, registered; renews every `renew`.
async fn registered(nodes: &[String], renew: Duration) -> (Client, Registrar) {
    let client = Client::new(config(nodes, "host-1")).expect("client");
    let registrar = client
        .registrar(
            RegistrarConfig::new(APP)
                .with_addr("grpc://127.0.0.1:9000")
                .with_renew_interval(renew)
                .with_backoff(backoff()),
        )
        .expect("registrar");
    registrar.register().await.expect("registered");
    (client, registrar)
}

/// A watcher client of `nodes` (in this order of preference) that starts on `first`: a client
/// shuffles its seeds, so clients are built (never touching the network) until one starts
/// there.
fn watcher_starting_on(nodes: &[String], first: &str, grace: Duration) -> Client {
    for _ in 0..256 {
        let client =
            Client::new(config(nodes, "watcher").with_unknown_grace(grace)).expect("client");
        if client.current_node() == first {
            return client;
        }
    }
    panic!("no watcher client started on {first}");
}

/// Every snapshot a subscription delivers, recorded by a task (aborted on drop of the handle).
struct Recorder {
    seen: Arc<Mutex<Vec<Arc<Snapshot>>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    fn start(mut sub: Subscription) -> Recorder {
        let seen: Arc<Mutex<Vec<Arc<Snapshot>>>> = Arc::default();
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Some(s) = sub.next().await {
                log.lock().unwrap().push(s);
            }
        });
        Recorder { seen, task }
    }

    /// How many published sets were empty.
    fn empties(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.is_empty())
            .count()
    }

    /// How many error events were published.
    fn errors(&self) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|s| s.error().is_some()).count()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The watcher's instancer and a subscription, once it sees the registered instance.
async fn watching(watcher: &Client) -> (Instancer, Subscription) {
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "the registered instance", |s| {
        s.len() == 1 && s.error().is_none()
    })
    .await;
    (instancer, sub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_between_two_registries_never_publishes_an_empty_set() {
    let a = DiscoveryServer::start(server()).await.unwrap();
    let b = DiscoveryServer::start(server()).await.unwrap();
    let nodes = [a.node(), b.node()];
    let (_service, registrar) = registered(&nodes, Duration::from_millis(500)).await;
    let on = registrar.registered_on().expect("registered somewhere");
    let watcher = watcher_starting_on(&nodes, &on, Duration::from_secs(10));
    let (instancer, sub) = watching(&watcher).await;
    let recorder = Recorder::start(instancer.subscribe());
    let (dead, alive) = if on == a.node() { (a, b) } else { (b, a) };
    assert_eq!(
        alive.handle().stats().instances,
        1,
        "only itself: not a replica"
    );

    dead.stop().await;
    // The watcher moves to the other node, where the app is unknown until the registrar
    // (which notices at its next renew) registers there.
    eventually("the set from the other node", || {
        sub.current()
            .is_some_and(|s| s.len() == 1 && s.error().is_none())
            && watcher.current_node() == alive.node()
            && watcher.cursor(APP).is_some_and(|c| c > 0)
    })
    .await;
    let back = sub.current().expect("a snapshot");
    assert_eq!(back.instances()[0].addr(), "127.0.0.1:9000");
    // The server counts the registration before the registrar has read the answer.
    eventually("the registrar registered on the other node", || {
        registrar.registered_on() == Some(alive.node()) && alive.handle().stats().instances == 2
    })
    .await;
    assert!(recorder.errors() > 0, "the failover was seen (stale set)");
    assert_eq!(
        recorder.empties(),
        0,
        "an empty set was published during the failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_an_app_still_unknown_after_the_grace_period_is_published_empty() {
    let a = DiscoveryServer::start(server()).await.unwrap();
    let b = DiscoveryServer::start(server()).await.unwrap();
    let nodes = [a.node(), b.node()];
    // Renews far apart: the registrar does not notice the dead node in time.
    let (_service, registrar) = registered(&nodes, Duration::from_secs(600)).await;
    let on = registrar.registered_on().expect("registered somewhere");
    let grace = Duration::from_secs(1);
    let watcher = watcher_starting_on(&nodes, &on, grace);
    let (_instancer, mut sub) = watching(&watcher).await;
    let (dead, alive) = if on == a.node() { (a, b) } else { (b, a) };

    dead.stop().await;
    let killed = Instant::now();
    common::wait_for_the_kept_set(&mut sub).await;
    assert_eq!(watcher.current_node(), alive.node());
    let empty = wait_for(&mut sub, EVENTUALLY, "the empty set", |s| {
        s.is_empty() && s.error().is_none()
    })
    .await;
    assert!(empty.is_empty());
    assert!(
        killed.elapsed() >= grace,
        "published empty {:?} after the failover, before the grace period ended",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_no_request_saw_fail_never_publishes_an_empty_set() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    // The watcher reaches the registry through a proxy that holds new connections while the
    // registry restarts (as a load balancer would): its parked poll is answered `-304` on the
    // way down and its next request reaches the new process; no request fails.
    let proxy = CountingProxy::start_patient(srv.addr(), Duration::from_secs(10))
        .await
        .unwrap();
    let (_service, _registrar) = registered(&[srv.node()], Duration::from_millis(500)).await;
    let watcher =
        Client::new(config(&[proxy.node()], "watcher").with_unknown_grace(Duration::from_secs(10)))
            .unwrap();
    let (instancer, sub) = watching(&watcher).await;
    let before = watcher.cursor(APP).expect("a cursor");
    let recorder = Recorder::start(instancer.subscribe());

    let srv = srv.restart().await.unwrap();
    eventually("the registrar back on the restarted registry", || {
        srv.handle().stats().instances == 2
    })
    .await;
    // Back: a cursor issued by the new process, the instance, no error. (Polled: when the
    // registrar wins the race to the new process, the set the watcher publishes equals the
    // last one and no new snapshot is delivered.)
    eventually("the set from the restarted registry", || {
        sub.current()
            .is_some_and(|s| s.len() == 1 && s.error().is_none())
            && watcher.cursor(APP).is_some_and(|c| c > 0 && c != before)
    })
    .await;
    assert_eq!(
        recorder.empties(),
        0,
        "an empty set was published during the restart"
    );
}

/// What the scripted node of the two tests below answers.
const BEFORE: u8 = 0;
/// Restarted (a new `infra.discovery` cursor), the app not registered again yet.
const RESTARTED: u8 = 1;
/// Restarted, the app registered again.
const BACK: u8 = 2;
/// Not restarted (the same `infra.discovery` cursor), the app deleted.
const DELETED: u8 = 3;

/// A node whose answers follow `phase` — no request ever fails, so a restart shows only in
/// what it answers: the app unknown and `infra.discovery` with a new cursor.
async fn scripted_restart(phase: Arc<AtomicU8>) -> (String, JoinHandle<()>) {
    let app = |ts: i64| {
        format!(
            r#""{APP}":{{"instances":{{"sh001":[{{"hostname":"h","status":1,"addrs":["grpc://127.0.0.1:9000"]}}]}},"latest_timestamp":{ts}}}"#
        )
    };
    let infra = |ts: i64| {
        format!(
            r#""infra.discovery":{{"instances":{{"sh001":[{{"hostname":"d","status":1,"addrs":["http://127.0.0.1:7171"]}}]}},"latest_timestamp":{ts}}}"#
        )
    };
    let not_modified = r#"{"code":-304,"message":"-304"}"#.to_owned();
    let missing = format!(r#"{{"code":0,"message":"0","data":{{}},"error":{{"-404":["{APP}"]}}}}"#);
    common::scripted_node(move |request| {
        let polls = request.contains("/discovery/polls");
        let data = match phase.load(Ordering::SeqCst) {
            BEFORE if polls => return not_modified.clone(),
            BEFORE => format!("{},{}", app(5), infra(100)),
            RESTARTED | DELETED if polls => return missing.clone(),
            RESTARTED => infra(200),
            DELETED => infra(100),
            _ if polls => return not_modified.clone(),
            _ => format!("{},{}", app(300), infra(200)),
        };
        format!(r#"{{"code":0,"message":"0","data":{{{data}}}}}"#)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_seen_only_in_the_answers_keeps_the_last_set() {
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let (node, _task) = scripted_restart(Arc::clone(&phase)).await;
    let watcher =
        Client::new(config(&[node], "watcher").with_unknown_grace(Duration::from_secs(60)))
            .unwrap();
    let (instancer, mut sub) = watching(&watcher).await;
    let recorder = Recorder::start(instancer.subscribe());

    phase.store(RESTARTED, Ordering::SeqCst);
    let stale = wait_for(&mut sub, EVENTUALLY, "a stale set or an empty one", |s| {
        s.error().is_some() || s.is_empty()
    })
    .await;
    assert_eq!(stale.len(), 1, "the last set is kept after the restart");
    let error = stale.error().expect("an error event").to_string();
    assert!(error.contains("node switch or restart"), "{error}");

    phase.store(BACK, Ordering::SeqCst);
    let back = wait_for(&mut sub, EVENTUALLY, "the set back", |s| {
        s.error().is_none()
    })
    .await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        watcher.cursor(APP),
        Some(300),
        "the restarted node's cursor"
    );
    assert_eq!(recorder.empties(), 0, "an empty set was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_on_a_node_that_did_not_restart_is_published_at_once() {
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let (node, _task) = scripted_restart(Arc::clone(&phase)).await;
    let grace = Duration::from_secs(120);
    assert!(grace > 2 * EVENTUALLY);
    let watcher = Client::new(config(&[node], "watcher").with_unknown_grace(grace)).unwrap();
    let (_instancer, mut sub) = watching(&watcher).await;

    // The same `infra.discovery` cursor: the app really went away; no grace period.
    phase.store(DELETED, Ordering::SeqCst);
    let empty = wait_for(&mut sub, EVENTUALLY, "the empty set", |s| {
        s.is_empty() || s.error().is_some()
    })
    .await;
    assert!(empty.is_empty() && empty.error().is_none(), "{empty:?}");
}
