//! The endpointer's gauges as a metrics recorder sees them: the endpoint count and the ready
//! count, which is counted off the endpointer's task for large sets and answered without reading
//! every state while no endpoint in the process is not ready.
//!
//! The recorder is process-wide: this file holds one test (nextest runs each test in a process
//! of its own).

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use sdkit_core::metrics::names;
use sdkit_core::{BoxError, Endpointer, Instance, InstanceCache};
use support::wait::eventually;

/// Keeps every gauge by name (the last value set wins, whatever the labels).
#[derive(Default)]
struct Gauges(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Gauges {
    fn get(&self, name: &str) -> Option<f64> {
        let map = self.0.lock().unwrap();
        map.get(name)
            .map(|g| f64::from_bits(g.load(Ordering::SeqCst)))
    }
}

struct Shared(&'static Gauges);

impl Recorder for Shared {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut map = self.0.0.lock().unwrap();
        let gauge = map.entry(key.name().to_owned()).or_default();
        Gauge::from_arc(Arc::clone(gauge))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn inst(n: usize) -> Instance {
    Instance::new(
        format!("web-{n:05}"),
        format!("10.0.{}.{}:80", n / 256, n % 256),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ready_gauge_counts_ready_endpoints_of_a_large_set() {
    static GAUGES: OnceLock<Gauges> = OnceLock::new();
    let gauges = GAUGES.get_or_init(Gauges::default);
    metrics::set_global_recorder(Shared(gauges)).expect("the only recorder of this process");

    // Large enough that the count runs on the blocking pool.
    let n = 3_000;
    let source = InstanceCache::new();
    source.update((0..n).map(inst).collect());
    let endpointer = Endpointer::new(&source, |i: &Instance| {
        Ok::<_, BoxError>(i.addr().to_owned())
    });
    endpointer.ready(Duration::from_secs(10)).await.unwrap();
    let expect = |value: usize| move || gauges.get(names::ENDPOINTER_READY) == Some(value as f64);
    eventually("every endpoint counted ready", expect(n)).await;
    assert_eq!(gauges.get(names::ENDPOINTER_ENDPOINTS), Some(n as f64));

    // Two endpoints stop being ready; the next update counts them out.
    let endpoints = endpointer.endpoints();
    endpoints.get(7).unwrap().state().set_transport_ready(false);
    endpoints.get(2_500).unwrap().state().set_healthy(false);
    source.update((0..=n).map(inst).collect());
    eventually("two endpoints counted not ready", expect(n + 1 - 2)).await;
    assert_eq!(
        gauges.get(names::ENDPOINTER_ENDPOINTS),
        Some((n + 1) as f64)
    );

    // Ready again: the next update counts every endpoint.
    endpoints.get(7).unwrap().state().set_transport_ready(true);
    endpoints.get(2_500).unwrap().state().set_healthy(true);
    drop(endpoints);
    source.update((0..n).map(inst).collect());
    eventually("every endpoint counted ready again", expect(n)).await;
}
