//! An endpointer over numbered generations of instances, for the race tests: ids are
//! `g<generation>-<index>` and each endpoint's service is `(generation, index)`, so a pick
//! tells which snapshot it came from. Each suite builds its own generations (sizes, zones).

#![allow(dead_code)]

use std::time::Duration;

use sdkit_core::{BoxError, Endpointer, Instance, InstanceCache};
use tokio::runtime::Runtime;

/// A running endpointer fed by `cache`, on `rt` (one worker thread).
pub struct Generations {
    /// Keep it alive for the endpointer's task.
    pub rt: Runtime,
    /// Publish the next generation here.
    pub cache: InstanceCache,
    /// Its set is what the balancers under test read.
    pub endpointer: Endpointer<(u64, u64)>,
}

/// Starts an endpointer whose first snapshot is `first` (ids `g<generation>-<index>`).
pub fn start(first: Vec<Instance>) -> Generations {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cache = InstanceCache::new();
    cache.update(first);
    let endpointer = rt.block_on(async {
        let e = Endpointer::new(&cache, |i: &Instance| {
            let (g, i) = i.id()[1..].split_once('-').ok_or("bad id")?;
            Ok::<_, BoxError>((g.parse::<u64>()?, i.parse::<u64>()?))
        });
        e.ready(Duration::from_secs(10))
            .await
            .expect("first snapshot");
        e
    });
    Generations {
        rt,
        cache,
        endpointer,
    }
}

/// Waits (yielding, up to a generous deadline) until `set` publishes generation `g`; panics
/// when it never does.
pub fn wait_for_generation(set: &sdkit_core::EndpointSet<(u64, u64)>, g: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while set.snapshot().get(0).map(|e| e.service().0) != Some(g) {
        assert!(
            std::time::Instant::now() < deadline,
            "the endpointer never published the last generation"
        );
        std::thread::yield_now();
    }
}

/// Panics with the count and the first of the errors the racing pickers collected, if any.
pub fn assert_no_errors(errors: &std::sync::Mutex<Vec<String>>) {
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
}
