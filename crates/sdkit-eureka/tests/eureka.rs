//! The Eureka backend against the Eureka API double (`sdkit_testkit::EurekaDouble`, written
//! from Eureka's REST documentation): registration shapes, heartbeats, re-registration on 404,
//! lease expiry, status filtering, delta fetches, failover, faults, basic auth.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sdkit_core::{Backoff, Instance, Instancer as _, Registrar as _, Snapshot, Subscription};
use sdkit_eureka::{Client, Config, Instancer, InstancerConfig, Registrar, RegistrarConfig};
use sdkit_testkit::EurekaDouble;

const EVENTUALLY: Duration = Duration::from_secs(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sdkit_eureka=debug,sdkit_core=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

fn fast() -> Backoff {
    Backoff::new(Duration::from_millis(20), Duration::from_millis(200))
}

fn config(double: &EurekaDouble) -> Config {
    Config::new([double.addr().to_string()]).with_request_timeout(Duration::from_millis(500))
}

fn watch(app: &str) -> InstancerConfig {
    InstancerConfig::new(app)
        .with_poll_interval(Duration::from_millis(50))
        .with_backoff(fast())
}

fn register(app: &str, instance: Instance) -> RegistrarConfig {
    RegistrarConfig::new(app, instance)
        .with_lease(Duration::from_millis(100), Duration::from_secs(2))
        .with_backoff(fast())
}

fn ids(s: &Snapshot) -> BTreeSet<String> {
    s.instances().iter().map(|i| i.id().to_owned()).collect()
}

fn set<const N: usize>(ids: [&str; N]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

async fn wait_for(
    sub: &mut Subscription,
    what: &str,
    pred: impl FnMut(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    sub.wait_for(EVENTUALLY, pred)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_heartbeat_watch_deregister() {
    init_tracing();
    let double = EurekaDouble::start().await.unwrap();
    let client = Client::new(config(&double)).unwrap();
    let instancer = Instancer::new(&client, watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    let first = wait_for(&mut sub, "empty set (404)", |s| s.error().is_none()).await;
    assert!(first.is_empty());

    let instance = Instance::new("web-1", "10.0.0.7:8080")
        .with_weight(3)
        .with_zone("z1")
        .with_meta("version", "1.2");
    let registrar = Registrar::new(&client, register("web", instance.clone())).unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .unwrap()
        .unwrap();

    // The body has Eureka's shapes.
    let posted = double.posted("WEB", "web-1").expect("registered");
    assert_eq!(posted["app"], "WEB");
    assert_eq!(posted["ipAddr"], "10.0.0.7");
    assert_eq!(posted["port"]["$"], 8080);
    assert_eq!(posted["port"]["@enabled"], "true");
    assert_eq!(posted["status"], "UP");
    assert_eq!(posted["dataCenterInfo"]["name"], "MyOwn");
    assert_eq!(posted["leaseInfo"]["durationInSecs"], 2);
    assert_eq!(posted["metadata"]["version"], "1.2");

    let seen = wait_for(&mut sub, "registration", |s| ids(s) == set(["web-1"])).await;
    assert_eq!(seen.instances()[0], instance);

    // Heartbeats keep the 2 s lease alive well past its duration.
    let heartbeats =
        sdkit_testkit::wait_until_async(EVENTUALLY, || double.heartbeats("WEB", "web-1") >= 30)
            .await;
    assert!(
        heartbeats,
        "heartbeats: {}",
        double.heartbeats("WEB", "web-1")
    );
    assert_eq!(
        double.registrations(),
        1,
        "no re-registration while heartbeats succeed"
    );
    assert_eq!(double.instances("WEB").len(), 1);

    tokio::time::timeout(Duration::from_secs(5), registrar.deregister())
        .await
        .unwrap()
        .unwrap();
    assert!(double.instances("WEB").is_empty());
    assert_eq!(double.requests("DELETE /eureka/apps/WEB/web-1"), 1);
    wait_for(&mut sub, "deregistration", |s| {
        s.is_empty() && s.error().is_none()
    })
    .await;
    instancer.stop();
    assert!(sub.next().await.is_none(), "nothing after stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_up_is_published_unless_configured() {
    init_tracing();
    let double = EurekaDouble::start().await.unwrap();
    for (id, status) in [
        ("a", "UP"),
        ("b", "DOWN"),
        ("c", "STARTING"),
        ("d", "OUT_OF_SERVICE"),
        ("e", "UP"),
    ] {
        double.insert("web", id, "10.0.0.1", 8000, status);
    }
    let client = Client::new(config(&double)).unwrap();
    let up_only = Instancer::new(&client, watch("web")).unwrap();
    let mut up = up_only.subscribe();
    wait_for(&mut up, "only UP", |s| ids(s) == set(["a", "e"])).await;
    let starting = Instancer::new(&client, watch("web").with_statuses(["up", "starting"])).unwrap();
    let mut both = starting.subscribe();
    wait_for(&mut both, "UP and STARTING", |s| {
        ids(s) == set(["a", "c", "e"])
    })
    .await;

    // Taking an instance out of service removes it; putting it back restores it.
    assert!(double.set_status("web", "a", "OUT_OF_SERVICE"));
    wait_for(&mut up, "a out of service", |s| ids(s) == set(["e"])).await;
    assert!(double.set_status("web", "a", "UP"));
    wait_for(&mut up, "a back", |s| ids(s) == set(["a", "e"])).await;

    // Older servers answer one instance as an object, not an array.
    let solo = EurekaDouble::start().await.unwrap();
    solo.set_single_instance_as_object(true);
    solo.insert("api", "only", "10.0.0.9", 9000, "UP");
    let instancer = Instancer::from_config(config(&solo), watch("api")).unwrap();
    let mut sub = instancer.subscribe();
    let seen = wait_for(&mut sub, "single object", |s| ids(s) == set(["only"])).await;
    assert_eq!(seen.instances()[0].addr(), "10.0.0.9:9000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_instance_reregisters_and_unrenewed_leases_expire() {
    init_tracing();
    let double = EurekaDouble::start_with_lease(Duration::from_secs(1))
        .await
        .unwrap();
    let client = Client::new(config(&double)).unwrap();
    let registrar = Registrar::new(
        &client,
        register("web", Instance::new("web-1", "10.0.0.7:8080")),
    )
    .unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(double.registrations(), 1);

    // The server loses the instance: the next heartbeat gets 404 and the registrar registers
    // again.
    assert!(double.forget("WEB", "web-1"));
    assert!(
        sdkit_testkit::wait_until_async(EVENTUALLY, || double.registrations() == 2
            && double.instances("WEB").contains_key("web-1"))
        .await,
        "not registered again after a 404 heartbeat"
    );

    // An instance nobody heartbeats is evicted after the double's 1 s lease.
    double.insert("web", "ghost", "10.0.0.8", 8080, "UP");
    let instancer = Instancer::new(&client, watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, "ghost seen", |s| {
        ids(s) == set(["ghost", "web-1"])
    })
    .await;
    wait_for(&mut sub, "ghost evicted", |s| ids(s) == set(["web-1"])).await;
    registrar.deregister().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_keep_the_last_good_set_and_servers_fail_over() {
    init_tracing();
    let double = EurekaDouble::start().await.unwrap();
    double.insert("web", "a", "10.0.0.1", 8000, "UP");
    // The first server is down: every request fails over to the second.
    let dead = sdkit_testkit::free_port();
    let cfg = Config::new([format!("127.0.0.1:{dead}"), double.addr().to_string()])
        .with_request_timeout(Duration::from_millis(300));
    let instancer = Instancer::from_config(cfg, watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, "initial via failover", |s| {
        ids(s) == set(["a"]) && s.error().is_none()
    })
    .await;

    for fault in ["500", "malformed", "hang"] {
        match fault {
            // 20 answers of 500 in a row (the retries back off, so this lasts a while), then
            // the double answers normally again by itself.
            "500" => double.fail_next(20, 500),
            "malformed" => double.set_malformed(true),
            _ => double.set_hang(true),
        }
        let stale = wait_for(&mut sub, fault, |s| s.error().is_some()).await;
        assert_eq!(ids(&stale), set(["a"]), "{fault}: last good set kept");
        let message = stale.error().unwrap().to_string();
        assert!(message.starts_with("eureka:"), "{message}");
        double.set_malformed(false);
        double.set_hang(false);
        wait_for(&mut sub, "recovered", |s| {
            ids(s) == set(["a"]) && s.error().is_none()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_fetches_apply_changes_and_reconcile() {
    init_tracing();
    let double = EurekaDouble::start().await.unwrap();
    double.insert("web", "a", "10.0.0.1", 8000, "UP");
    double.insert("other", "x", "10.0.0.2", 8000, "UP");
    let client = Client::new(config(&double)).unwrap();
    let instancer = Instancer::new(&client, watch("web").with_delta(true, 1000)).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, "full fetch", |s| ids(s) == set(["a"])).await;
    double.insert("web", "b", "10.0.0.3", 8000, "UP");
    wait_for(&mut sub, "added via delta", |s| ids(s) == set(["a", "b"])).await;
    assert!(double.set_status("web", "a", "DOWN"));
    wait_for(&mut sub, "modified via delta", |s| ids(s) == set(["b"])).await;
    let registrar =
        Registrar::new(&client, register("web", Instance::new("c", "10.0.0.4:80"))).unwrap();
    registrar.register().await.unwrap();
    wait_for(&mut sub, "registered via delta", |s| {
        ids(s) == set(["b", "c"])
    })
    .await;
    registrar.deregister().await.unwrap();
    wait_for(&mut sub, "deleted via delta", |s| ids(s) == set(["b"])).await;
    assert_eq!(
        double.requests("GET /eureka/apps/WEB"),
        1,
        "one full fetch, then deltas"
    );
    assert!(double.requests("GET /eureka/apps/delta") >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_sent_and_never_shown() {
    init_tracing();
    let double = EurekaDouble::start()
        .await
        .unwrap()
        .with_basic_auth("svc", "hunter2");
    double.insert("web", "a", "10.0.0.1", 8000, "UP");
    let good = config(&double).with_basic_auth("svc", "hunter2");
    let client = Client::new(good.clone()).unwrap();
    assert!(!format!("{good:?} {client:?}").contains("hunter2"));
    let instancer = Instancer::new(&client, watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, "authorised", |s| ids(s) == set(["a"])).await;

    let bad = Instancer::from_config(
        config(&double).with_basic_auth("svc", "wrong-pass"),
        watch("web"),
    )
    .unwrap();
    let mut refused = bad.subscribe();
    let state = wait_for(&mut refused, "refused", |s| s.error().is_some()).await;
    let message = state.error().unwrap().to_string();
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("wrong-pass"), "{message}");
}
