//! Deterministic subsetting: prints the balance and churn figures of issue #13 (100 clients,
//! 300 backends, k = 25; every one of the 300 backends leaving in turn), then times the
//! per-snapshot subset computation.
//!
//! `cargo bench -p sdkit-core --bench subset -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sdkit_core::lb::subset::{subset_by_index, subset_by_key};

const CLIENTS: u64 = 100;
const K: usize = 25;

fn backends(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}:8080", i / 65_536, (i / 256) % 256, i % 256))
        .collect()
}

/// Client `c`'s subset, as ids.
fn subset<'a>(ids: &[&'a str], c: u64, by_key: bool) -> BTreeSet<&'a str> {
    let picked = if by_key {
        subset_by_key(ids, K, &format!("client-{c}"))
    } else {
        subset_by_index(ids, K, c)
    };
    picked.into_iter().map(|i| ids[i]).collect()
}

fn figures(by_key: bool) {
    let owned = backends(300);
    let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
    let before: Vec<BTreeSet<&str>> = (0..CLIENTS).map(|c| subset(&ids, c, by_key)).collect();
    let mut load = vec![0usize; ids.len()];
    for s in &before {
        for id in s {
            load[ids.iter().position(|x| x == id).unwrap_or(0)] += 1;
        }
    }
    let (lo, hi) = (
        load.iter().min().copied().unwrap_or(0),
        load.iter().max().copied().unwrap_or(0),
    );
    let mut churn = Vec::with_capacity(ids.len());
    for removed in 0..ids.len() {
        let rest: Vec<&str> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != removed)
            .map(|(_, s)| *s)
            .collect();
        let changed = (0..CLIENTS)
            .filter(|&c| subset(&rest, c, by_key) != before[c as usize])
            .count();
        churn.push(changed as f64 / CLIENTS as f64);
    }
    churn.sort_by(f64::total_cmp);
    let mean = churn.iter().sum::<f64>() / churn.len() as f64;
    println!(
        "subset_by_{}: 100 clients, 300 backends, k = 25: clients per backend min {lo} max {hi} \
         (ratio {:.3}); churn when 1 of 300 leaves (all 300 cases): mean {:.1} %, median {:.1} %, \
         max {:.1} %",
        if by_key { "key" } else { "index" },
        hi as f64 / lo.max(1) as f64,
        mean * 100.0,
        churn[churn.len() / 2] * 100.0,
        churn[churn.len() - 1] * 100.0,
    );
}

fn compute(c: &mut Criterion) {
    figures(false);
    figures(true);
    let mut group = c.benchmark_group("subset");
    for n in [300usize, 10_000] {
        let owned = backends(n);
        let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
        // The last client of a round: the most work for the index scheme.
        let last = (n.div_ceil(K) - 1) as u64;
        group.bench_with_input(BenchmarkId::new("by_index_last_of_round", n), &n, |b, _| {
            b.iter(|| black_box(subset_by_index(&ids, K, last)))
        });
        group.bench_with_input(BenchmarkId::new("by_key", n), &n, |b, _| {
            b.iter(|| black_box(subset_by_key(&ids, K, "client-7")))
        });
    }
    group.finish();
}

criterion_group!(benches, compute);
criterion_main!(benches);
