//! The shared instance cache and instancers: go-kit's cases plus the ones go-kit gets wrong.

use std::time::Duration;

use sdkit_core::{
    Event, FixedInstancer, Instance, InstanceCache, Instancer, SourceError, TaskInstancer,
};

fn inst(id: &str) -> Instance {
    Instance::new(id, format!("{id}.local:80"))
}

fn ids(instances: &[Instance]) -> Vec<&str> {
    instances.iter().map(Instance::id).collect()
}

#[tokio::test(start_paused = true)]
async fn replays_current_state_to_new_subscribers() {
    let cache = InstanceCache::new();
    cache.update(vec![inst("b"), inst("a")]);
    let mut sub = cache.subscribe();
    let first = sub.next().await.expect("current state");
    assert_eq!(ids(first.instances()), ["a", "b"]);
    // Nothing else until something changes.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), sub.next())
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn equal_snapshots_are_not_republished() {
    let cache = InstanceCache::new();
    let mut sub = cache.subscribe();
    assert!(cache.update(vec![inst("a"), inst("b")]));
    sub.next().await.expect("first");
    assert!(!cache.update(vec![inst("b"), inst("a")]));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), sub.next())
            .await
            .is_err()
    );
    // A changed field is a change.
    assert!(cache.update(vec![inst("a"), inst("b").with_weight(7)]));
    assert_eq!(sub.next().await.unwrap().instances()[1].weight(), 7);
}

#[tokio::test]
async fn duplicates_in_one_snapshot_collapse() {
    let cache = InstanceCache::new();
    cache.update(vec![inst("a"), inst("a"), inst("b"), inst("a")]);
    assert_eq!(ids(cache.current().unwrap().instances()), ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn errors_keep_the_last_good_set() {
    let cache = InstanceCache::new();
    let mut sub = cache.subscribe();
    cache.update(vec![inst("a")]);
    sub.next().await.unwrap();

    assert!(cache.publish(Event::Error(SourceError::new("registry down"))));
    let stale = sub.next().await.unwrap();
    assert_eq!(ids(stale.instances()), ["a"]);
    assert_eq!(stale.error().unwrap().to_string(), "registry down");

    // The same failure again is not news.
    assert!(!cache.error(SourceError::new("registry down")));
    // Recovery with the same set clears the error.
    assert!(cache.update(vec![inst("a")]));
    let good = sub.next().await.unwrap();
    assert!(good.error().is_none());
    assert_eq!(ids(good.instances()), ["a"]);
}

#[tokio::test]
async fn an_error_before_any_set_is_an_empty_stale_snapshot() {
    let cache = InstanceCache::new();
    cache.error(SourceError::new("unreachable"));
    let s = cache.current().unwrap();
    assert!(s.is_empty());
    assert!(s.error().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_never_delays_the_publisher_or_others() {
    let cache = InstanceCache::new();
    // A subscriber that never reads, and one that reads slowly.
    let _stuck = cache.subscribe();
    let mut slow = cache.subscribe();
    let mut fast = cache.subscribe();

    // The publisher is synchronous: 10 000 publications finish without awaiting anyone.
    for n in 0..10_000u32 {
        assert!(cache.update(vec![inst(&format!("i{n}"))]));
    }
    // The fast subscriber sees the newest state directly.
    let newest = fast.next().await.unwrap();
    assert_eq!(ids(newest.instances()), ["i9999"]);
    // So does the slow one, skipping every intermediate state.
    let seen = slow.next().await.unwrap();
    assert_eq!(ids(seen.instances()), ["i9999"]);
}

#[tokio::test(start_paused = true)]
async fn many_subscribers_all_see_a_new_state() {
    let cache = InstanceCache::new();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let mut sub = cache.subscribe();
        tasks.push(tokio::spawn(async move { sub.next().await.unwrap() }));
    }
    tokio::task::yield_now().await;
    cache.update(vec![inst("x")]);
    for t in tasks {
        assert_eq!(ids(t.await.unwrap().instances()), ["x"]);
    }
}

#[tokio::test(start_paused = true)]
async fn ready_times_out_with_a_typed_error() {
    let cache = InstanceCache::new();
    let mut sub = cache.subscribe();
    let err = sub.ready(Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(err.waited, Duration::from_millis(200));
    cache.update(vec![]);
    assert!(
        sub.ready(Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn fixed_instancer_publishes_once_and_stops() {
    let instancer = FixedInstancer::new(vec![inst("a"), inst("a")]);
    let mut sub = instancer.subscribe();
    assert_eq!(sub.next().await.unwrap().len(), 1);
    instancer.stop();
    instancer.stop();
    assert!(sub.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_idempotent_and_nothing_is_published_after_it() {
    // A task that publishes as fast as it can and ignores cancellation as long as it is polled.
    let instancer = TaskInstancer::spawn("busy", move |cache, _token| async move {
        let mut n = 0u64;
        loop {
            cache.update(vec![inst(&format!("n{n}"))]);
            n += 1;
            tokio::task::yield_now().await;
        }
    });
    let mut sub = instancer.subscribe();
    sub.next().await.unwrap();
    instancer.stop();
    instancer.stop();
    let after_stop = instancer.cache().current();
    // Give the (aborted) task every chance to publish again.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(instancer.cache().current(), after_stop);
    // The subscription drains to the end.
    while sub.next().await.is_some() {}
}

#[tokio::test]
async fn dropping_a_task_instancer_stops_its_task() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let instancer = TaskInstancer::spawn("drop", move |_cache, token| async move {
        // Holds `tx` until cancelled; the receiver sees it dropped when the task ends.
        let _tx = tx;
        token.cancelled().await;
    });
    drop(instancer);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .is_ok(),
        "task outlived its handle"
    );
}
