//! Pick cost of the context-aware balancers (Maglev and ring-hash consistent hashing, zone
//! preference, subsetting) over 3, 100 and 10 000 endpoints, beside round-robin in the same
//! run, all through `pick_with`; plus the one-off per-snapshot table builds and the remap
//! figures.
//!
//! `cargo bench -p sdkit-core --bench hash -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group};
use sdkit_core::lb::hash::{Maglev, RingHash, hash_key};
use sdkit_core::lb::subset::Subset;
use sdkit_core::lb::zone::ZoneAware;
use sdkit_core::lb::{Balancer, PickContext, RoundRobin};
use sdkit_core::{EndpointSet, Instance};

/// An endpoint whose clone costs nothing, to isolate the balancer's own cost.
#[derive(Clone, Copy)]
struct Id(u32);

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
        if n == 10_000 {
            // Before the compact default: the table of 100 slots per endpoint (2 MiB).
            let wide = Maglev::new(set.clone()).with_table_size(1_048_573);
            let _ = wide.pick();
            group.bench_with_input(
                BenchmarkId::new("maglev_1048573_hash_key", n),
                &n,
                |b, _| {
                    b.iter(|| {
                        j = j.wrapping_add(1);
                        let cx = PickContext::new().with_hash(hash_key(&j.to_le_bytes()));
                        black_box(wide.pick_with(&cx).map(|p| p.service))
                    })
                },
            );
        }
        let ring = RingHash::new(set.clone());
        let _ = ring.pick();
        group.bench_with_input(BenchmarkId::new("ring_hash", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4_095;
                let cx = PickContext::new().with_hash(keys[i]);
                black_box(ring.pick_with(&cx).map(|p| p.service))
            })
        });
        group.bench_with_input(BenchmarkId::new("ring_hash_hash_key", n), &n, |b, _| {
            b.iter(|| {
                j = j.wrapping_add(1);
                let cx = PickContext::new().with_hash(hash_key(&j.to_le_bytes()));
                black_box(ring.pick_with(&cx).map(|p| p.service))
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

fn without(n: usize, removed: usize) -> EndpointSet<Id> {
    EndpointSet::fixed((0..n).filter(|&i| i != removed).map(|i| {
        let addr = format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256);
        (Instance::from_addr(addr), Id(i as u32))
    }))
}

/// The share of `keys` that `before` and `after` map to different endpoints.
fn remapped(before: &dyn Balancer<Id>, after: &dyn Balancer<Id>, keys: &[u64]) -> f64 {
    let pick = |lb: &dyn Balancer<Id>, k: u64| {
        lb.pick_with(&PickContext::new().with_hash(k))
            .map(|p| p.service.0)
            .ok()
    };
    let moved = keys
        .iter()
        .filter(|&&k| pick(before, k) != pick(after, k))
        .count();
    moved as f64 * 100.0 / keys.len() as f64
}

/// Prints the share of keys remapped when one of `n` endpoints leaves (200 000 keys), and the
/// spread of key shares, for both tables and for Maglev tables of pinned sizes at 10 000.
fn remap_figures() {
    let keys: Vec<u64> = (0..200_000u32)
        .map(|k| hash_key(&k.to_le_bytes()))
        .collect();
    type Make = fn(EndpointSet<Id>) -> Box<dyn Balancer<Id>>;
    let kinds: [(&str, Make); 5] = [
        ("maglev", |s| Box::new(Maglev::new(s))),
        ("ring_hash", |s| Box::new(RingHash::new(s))),
        ("maglev 65537", |s| {
            Box::new(Maglev::new(s).with_table_size(65_537))
        }),
        ("maglev 262139", |s| {
            Box::new(Maglev::new(s).with_table_size(262_139))
        }),
        ("maglev 1048573", |s| {
            Box::new(Maglev::new(s).with_table_size(1_048_573))
        }),
    ];
    for (name, make) in kinds {
        let sizes: &[usize] = if name.contains(' ') {
            &[10_000]
        } else {
            &[3, 100, 10_000]
        };
        for &n in sizes {
            let all = make(set(n));
            let moved = remapped(&*all, &*make(without(n, n / 2)), &keys);
            // Key shares over 2 000 000 keys, 20 000 000 at 10 000 endpoints (2 000 each:
            // ± 7 % of sampling noise at 3σ): the busiest and idlest endpoint, relative to 1/N.
            let total = if n >= 10_000 {
                20_000_000u64
            } else {
                2_000_000
            };
            let mut counts = vec![0u32; n];
            for k in 0..total {
                let cx = PickContext::new().with_hash(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                counts[all
                    .pick_with(&cx)
                    .map(|p| p.service.0 as usize)
                    .unwrap_or(0)] += 1;
            }
            let mean = total as f64 / n as f64;
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            println!(
                "{name}: 1 of {n} endpoints leaves: {moved:.3} % of keys remapped (1/N = {:.3} %, \
                 bound 1/N + 2 %); key shares {:.2}–{:.2} × 1/N",
                100.0 / n as f64,
                f64::from(*lo) / mean,
                f64::from(*hi) / mean,
            );
        }
    }
}

fn build(c: &mut Criterion) {
    // `HASH_FIGURES=0` skips the figures (for instruction counts of the picks alone).
    if std::env::var_os("HASH_FIGURES").is_none_or(|v| v != "0") {
        remap_figures();
    }
    let mut group = c.benchmark_group("hash_build");
    group.sample_size(10);
    for n in SIZES {
        let set = set(n);
        group.bench_with_input(BenchmarkId::new("maglev_table", n), &n, |b, _| {
            // A fresh balancer per iteration: the first pick builds the table.
            b.iter(|| black_box(Maglev::new(set.clone()).pick()))
        });
        group.bench_with_input(BenchmarkId::new("ring_hash", n), &n, |b, _| {
            b.iter(|| black_box(RingHash::new(set.clone()).pick()))
        });
        group.bench_with_input(BenchmarkId::new("subset_by_index", n), &n, |b, _| {
            b.iter(|| black_box(Subset::by_index(set.clone(), 1_000_011).pick()))
        });
    }
    group.finish();
}

/// `HASH_PROFILE=<table size, 0 for the default>`: instead of the benchmarks, one Maglev over
/// 10 000 endpoints and 1 000 000 picks with a fresh key each, in a function of its own, for
/// `valgrind --tool=callgrind --cache-sim=yes` (instruction and cache-miss counts per pick
/// while the machine is too loaded for timings).
fn profile(size: u32) {
    let set = set(10_000);
    let maglev = if size == 0 {
        Maglev::new(set)
    } else {
        Maglev::new(set).with_table_size(size)
    };
    let _ = maglev.pick();
    println!("table: {} slots", maglev.table_size());
    let started = std::time::Instant::now();
    let sum = fresh_key_picks(&maglev, 1_000_000);
    println!("1 000 000 fresh-key picks: {:?} ({sum})", started.elapsed());
}

#[inline(never)]
fn fresh_key_picks(lb: &Maglev<Id>, n: u32) -> u64 {
    let mut sum = 0u64;
    for j in 0..n {
        let cx = PickContext::new().with_hash(hash_key(&j.to_le_bytes()));
        sum += lb.pick_with(&cx).map_or(0, |p| u64::from(p.service.0));
    }
    sum
}

criterion_group!(benches, pick, build);

fn main() {
    if let Some(size) = std::env::var("HASH_PROFILE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        profile(size);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
