//! Pick cost of the context-aware balancers (Maglev consistent hashing, zone preference,
//! subsetting) over 3, 100 and 10 000 endpoints, beside round-robin in the same run, all
//! through `pick_with`; plus the one-off per-snapshot table builds.
//!
//! `cargo bench -p sdkit-core --bench hash -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sdkit_core::lb::hash::{Maglev, hash_key};
use sdkit_core::lb::subset::Subset;
use sdkit_core::lb::zone::ZoneAware;
use sdkit_core::lb::{Balancer, PickContext, RoundRobin};
use sdkit_core::{EndpointSet, Instance};

/// An endpoint whose clone costs nothing, to isolate the balancer's own cost.
#[derive(Clone, Copy)]
struct Id(#[allow(dead_code)] u32);

const SIZES: [usize; 3] = [3, 100, 10_000];

fn set(n: usize) -> EndpointSet<Id> {
    EndpointSet::fixed((0..n).map(|i| {
        let addr = format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256);
        // Three zones.
        let zone = ["z0", "z1", "z2"][i % 3];
        (Instance::from_addr(addr).with_zone(zone), Id(i as u32))
    }))
}

fn pick(c: &mut Criterion) {
    // 4 096 distinct keys, visited in turn: every pick reads a different table slot.
    let keys: Vec<u64> = (0..4_096)
        .map(|k| hash_key(format!("user-{k}").as_bytes()))
        .collect();
    let mut group = c.benchmark_group("hash_pick");
    for n in SIZES {
        let set = set(n);
        let cx = PickContext::new();
        let rr = RoundRobin::new(set.clone());
        group.bench_with_input(BenchmarkId::new("round_robin", n), &n, |b, _| {
            b.iter(|| black_box(rr.pick_with(&cx).map(|p| p.service)))
        });
        let maglev = Maglev::new(set.clone());
        // The first pick builds the table; measure picks only.
        let _ = maglev.pick();
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("maglev", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4_095;
                let cx = PickContext::new().with_hash(keys[i]);
                black_box(maglev.pick_with(&cx).map(|p| p.service))
            })
        });
        let mut j = 0u32;
        group.bench_with_input(BenchmarkId::new("maglev_hash_key", n), &n, |b, _| {
            b.iter(|| {
                j = j.wrapping_add(1);
                let cx = PickContext::new().with_hash(hash_key(&j.to_le_bytes()));
                black_box(maglev.pick_with(&cx).map(|p| p.service))
            })
        });
        let zone = ZoneAware::new(set.clone()).with_zone("z1");
        let _ = zone.pick();
        group.bench_with_input(BenchmarkId::new("zone_aware", n), &n, |b, _| {
            b.iter(|| black_box(zone.pick_with(&cx).map(|p| p.service)))
        });
        let subset = Subset::by_index(set, 7);
        let _ = subset.pick();
        group.bench_with_input(BenchmarkId::new("subset", n), &n, |b, _| {
            b.iter(|| black_box(subset.pick_with(&cx).map(|p| p.service)))
        });
    }
    group.finish();
}

/// Prints the share of keys remapped when one of `n` endpoints leaves (200 000 keys).
fn remap_figures() {
    let keys: Vec<u64> = (0..200_000u32)
        .map(|k| hash_key(&k.to_le_bytes()))
        .collect();
    for n in [3usize, 100, 10_000] {
        let all = Maglev::new(set(n));
        let fewer = Maglev::new(EndpointSet::fixed((0..n).filter(|&i| i != n / 2).map(
            |i| {
                let addr = format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256);
                (Instance::from_addr(addr), Id(i as u32))
            },
        )));
        let pick = |lb: &Maglev<Id>, k: u64| {
            lb.pick_with(&PickContext::new().with_hash(k))
                .map(|p| p.service.0)
                .ok()
        };
        let moved = keys
            .iter()
            .filter(|&&k| pick(&all, k) != pick(&fewer, k))
            .count();
        println!(
            "maglev: 1 of {n} endpoints leaves: {:.3} % of keys remapped (1/N = {:.3} %, bound 1/N + 2 %)",
            moved as f64 * 100.0 / keys.len() as f64,
            100.0 / n as f64
        );
    }
}

fn build(c: &mut Criterion) {
    remap_figures();
    let mut group = c.benchmark_group("hash_build");
    group.sample_size(10);
    for n in SIZES {
        let set = set(n);
        group.bench_with_input(BenchmarkId::new("maglev_table", n), &n, |b, _| {
            // A fresh balancer per iteration: the first pick builds the table.
            b.iter(|| black_box(Maglev::new(set.clone()).pick()))
        });
        group.bench_with_input(BenchmarkId::new("subset_by_index", n), &n, |b, _| {
            b.iter(|| black_box(Subset::by_index(set.clone(), 1_000_011).pick()))
        });
    }
    group.finish();
}

criterion_group!(benches, pick, build);
criterion_main!(benches);
