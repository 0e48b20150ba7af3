//! A Consul instance's identity is `<node>/<service ID>`, always: it does not change when
//! another node reports the same service ID (IDs are unique per agent, not per cluster).

mod common;

use std::sync::{Arc, Mutex};

use common::{client, eventually, ids, until, watch};
use sdkit_consul::Instancer;
use sdkit_core::{Endpointer, Instancer as _};
use sdkit_testkit::ConsulDouble;
use sdkit_testkit::consul::ServiceSpec;

#[tokio::test]
async fn an_instance_keeps_its_id_when_another_node_reports_the_same_service_id() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(
        ServiceSpec::new("web", "web-1")
            .address("10.0.0.1")
            .port(8080),
    );
    let instancer = Instancer::new(&client(&consul), watch("web")).unwrap();
    let mut sub = instancer.subscribe();
    // Every endpoint the balancer layer makes (one per identity: a new identity reconnects).
    let made = Arc::new(Mutex::new(Vec::<String>::new()));
    let factory = {
        let made = Arc::clone(&made);
        move |i: &sdkit_core::Instance| -> Result<String, std::convert::Infallible> {
            made.lock().unwrap().push(i.id().to_owned());
            Ok(i.addr().to_owned())
        }
    };
    let endpointer = Endpointer::new(&instancer, factory);
    let s = until(&mut sub, "web-1", |s| s.len() == 1).await;
    assert_eq!(ids(&s), ["node-1/web-1"]);
    eventually("one endpoint", || {
        endpointer.endpoints().as_slice().len() == 1
    })
    .await;

    // An unrelated agent registers the same service ID (IDs are unique per node only).
    consul.insert_service(
        ServiceSpec::new("web", "web-1")
            .address("10.0.0.2")
            .port(8080)
            .node("node-2", "10.0.0.2", "dc1"),
    );
    let s = until(&mut sub, "both nodes' web-1", |s| s.len() == 2).await;
    assert_eq!(ids(&s), ["node-1/web-1", "node-2/web-1"]);
    let addrs: Vec<_> = s.instances().iter().map(|i| i.addr()).collect();
    assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080"]);
    eventually("two endpoints", || {
        endpointer.endpoints().as_slice().len() == 2
    })
    .await;

    // It leaves again: the first instance still has the same id.
    assert!(consul.remove_node_service("node-2", "web-1"));
    let s = until(&mut sub, "node-2's web-1 gone", |s| s.len() == 1).await;
    assert_eq!(ids(&s), ["node-1/web-1"]);
    assert_eq!(s.instances()[0].addr(), "10.0.0.1:8080");
    eventually("one endpoint again", || {
        endpointer.endpoints().as_slice().len() == 1
    })
    .await;
    assert_eq!(
        *made.lock().unwrap(),
        ["node-1/web-1", "node-2/web-1"],
        "node-1's endpoint was made once, never remade for a new identity"
    );
}
