//! tower integration: a Discover stream driving `tower::balance::p2c::Balance`, and the
//! balanced service inside a `ServiceBuilder`.

use std::collections::HashSet;
use std::time::Duration;

use sdkit_core::discover::discover;
use sdkit_core::lb::Random;
use sdkit_core::{BalancedService, BoxError, Endpointer, Instance, InstanceCache};
use tower::balance::p2c::Balance;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn echo_id(i: &Instance) -> Result<tower::util::BoxService<(), String, BoxError>, BoxError> {
    let id = i.id().to_owned();
    Ok(tower::util::BoxService::new(service_fn(move |()| {
        let id = id.clone();
        async move { Ok::<_, BoxError>(id) }
    })))
}

async fn served_by<S>(balance: &mut S, requests: usize) -> HashSet<String>
where
    S: Service<(), Response = String>,
    S::Error: std::fmt::Debug,
{
    let mut seen = HashSet::new();
    for _ in 0..requests {
        let id = balance.ready().await.unwrap().call(()).await.unwrap();
        seen.insert(id);
    }
    seen
}

#[tokio::test]
async fn p2c_balance_follows_the_instancer() {
    let source = InstanceCache::new();
    source.update(vec![
        Instance::new("a", "10.0.0.1:80"),
        Instance::new("b", "10.0.0.2:80"),
    ]);
    let changes = discover(&source, echo_id);
    let mut balance = Balance::new(PendingRequestsDiscover::new(
        changes,
        CompleteOnResponse::default(),
    ));
    let seen = served_by(&mut balance, 200).await;
    assert_eq!(seen, HashSet::from(["a".into(), "b".into()]));

    // b leaves, c joins: tower sees Remove(b) and Insert(c).
    source.update(vec![
        Instance::new("a", "10.0.0.1:80"),
        Instance::new("c", "10.0.0.3:80"),
    ]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = served_by(&mut balance, 200).await;
        if seen == HashSet::from(["a".into(), "c".into()]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served by {seen:?}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn balanced_service_composes_with_tower_layers() {
    let source = InstanceCache::new();
    source.update(vec![Instance::new("a", "10.0.0.1:80")]);
    let endpointer = Endpointer::new(&source, |i: &Instance| {
        let id = i.id().to_owned();
        Ok::<_, BoxError>(tower::util::BoxCloneSyncService::new(service_fn(
            move |()| {
                let id = id.clone();
                async move { Ok::<_, BoxError>(id) }
            },
        )))
    });
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    let mut svc = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(BalancedService::new(Random::new(endpointer.endpoint_set())));
    assert_eq!(svc.ready().await.unwrap().call(()).await.unwrap(), "a");
}
