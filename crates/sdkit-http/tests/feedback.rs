//! Outcomes feed the balancer: a connect failure marks the endpoint not ready (and a probe marks
//! it ready once it answers again); 5xx answers and timeouts are recorded through the pick's
//! guard in the endpoint's state.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Behaviour, TestServer, dead_addr, wait_until};
use sdkit_core::lb::{Balancer, CallGuard, EndpointState, PickContext, Picked};
use sdkit_core::{EndpointSet, FixedInstancer, Instance, NoEndpoints};
use sdkit_http::{Client, Config, Endpoint, Served};

fn transport_ready(client: &Client, addr: &str) -> bool {
    let set = client.endpoint_set("web").expect("registered");
    let endpoints = set.snapshot();
    let endpoint = endpoints
        .iter()
        .find(|e| e.instance().addr() == addr)
        .expect("endpoint");
    endpoint.state().is_transport_ready()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_instance_is_skipped_until_it_answers_again() {
    let (a, b) = (
        TestServer::start("a", Behaviour::Ok).await,
        TestServer::start("b", Behaviour::Ok).await,
    );
    let dead = dead_addr();
    let addrs = [dead.to_string(), a.addr.to_string(), b.addr.to_string()];
    let client = Client::new(Config::default()).unwrap();
    let instances = addrs.iter().map(Instance::from_addr).collect();
    client
        .add_instancer("web", "static://", FixedInstancer::new(instances))
        .unwrap();
    client.ready("web", Duration::from_secs(5)).await.unwrap();
    // Round-robin reaches the dead one within three calls; its connect fails, the call moves on.
    for _ in 0..3 {
        client.get("http://web/").await.expect("get");
    }
    assert!(!transport_ready(&client, &addrs[0]));
    // Now it is skipped: every call succeeds at the first attempt.
    for _ in 0..30 {
        let response = client.get("http://web/").await.expect("get");
        let served = response.extensions().get::<Served>().unwrap();
        assert_eq!(served.attempts, 1, "{served:?}");
    }
    // It comes back on the same address: the probe marks it ready, traffic reaches it.
    let mut back = TestServer::start_on("back", Behaviour::Ok, dead).await;
    wait_until("the probe marks it ready", Duration::from_secs(20), || {
        transport_ready(&client, &addrs[0])
    })
    .await;
    let mut reached = false;
    for _ in 0..6 {
        let response = client.get("http://web/").await.expect("get");
        reached |= response.text().await.unwrap() == "hello from back";
    }
    assert!(reached);
    back.kill();
}

/// A balancer that always picks the first endpoint with a tracking guard (as least-loaded
/// balancers do), so outcomes land in the endpoint's state.
struct First {
    set: EndpointSet<Endpoint>,
}

impl Balancer<Endpoint> for First {
    fn pick_with(&self, _cx: &PickContext<'_>) -> Result<Picked<Endpoint>, NoEndpoints> {
        let endpoints = self.set.load();
        let endpoint = endpoints.get(0).ok_or(NoEndpoints)?;
        Ok(Picked {
            service: endpoint.service().clone(),
            guard: CallGuard::track(Arc::clone(endpoint.state())),
            key: endpoint.key(),
        })
    }
}

/// A client with one attempt per call, `First` as balancer, and `web` at `addr`.
async fn tracking_client(config: Config, addr: SocketAddr) -> Client {
    let client = Client::new(config.with_max_attempts(1))
        .unwrap()
        .with_balancer(Arc::new(|set| Arc::new(First { set })));
    let instances = vec![Instance::from_addr(addr.to_string())];
    client
        .add_instancer("web", "static://", FixedInstancer::new(instances))
        .unwrap();
    client.ready("web", Duration::from_secs(5)).await.unwrap();
    client
}

fn state(client: &Client) -> Arc<EndpointState> {
    let set = client.endpoint_set("web").unwrap();
    Arc::clone(set.snapshot().get(0).unwrap().state())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_timeouts_are_recorded_as_failures() {
    // 503 three times, then 200: three failures recorded, then a success resets them.
    let flaky = TestServer::start("flaky", Behaviour::FailFirst(3, 503)).await;
    let client = tracking_client(Config::default(), flaky.addr).await;
    for n in 1..=3 {
        let response = client.get("http://web/").await.expect("an answer");
        assert_eq!(response.status(), 503);
        assert_eq!(state(&client).consecutive_failures(), n);
        assert_eq!(state(&client).in_flight(), 0);
    }
    let response = client.get("http://web/").await.expect("ok");
    assert_eq!(response.status(), 200);
    assert_eq!(state(&client).consecutive_failures(), 0);

    // No answer within the attempt timeout: a failure.
    let hang = TestServer::start("hang", Behaviour::Hang).await;
    let config = Config::default().with_attempt_timeout(Duration::from_millis(200));
    let client = tracking_client(config, hang.addr).await;
    client.get("http://web/").await.expect_err("timeout");
    assert_eq!(state(&client).consecutive_failures(), 1);
    assert_eq!(state(&client).in_flight(), 0);
}
