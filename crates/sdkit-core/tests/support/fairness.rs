//! Fairness across threads: picks from two threads at once, counted per endpoint.

#![allow(dead_code)]

/// Runs `per_thread` picks on each of two threads at once (each thread calls its own picker
/// from `picker`, which returns the picked endpoint's index below `n`) and asserts that every
/// endpoint got its even share of all picks within 1 %.
pub fn assert_even_from_two_threads<F>(n: usize, per_thread: usize, picker: impl Fn() -> F)
where
    F: FnMut() -> usize + Send + 'static,
{
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let mut pick = picker();
            std::thread::spawn(move || {
                let mut c = vec![0u64; n];
                for _ in 0..per_thread {
                    c[pick()] += 1;
                }
                c
            })
        })
        .collect();
    let mut total = vec![0u64; n];
    for t in threads {
        for (i, k) in t.join().unwrap().into_iter().enumerate() {
            total[i] += k;
        }
    }
    let expected = (2 * per_thread) as f64 / n as f64;
    for k in &total {
        assert!(
            (*k as f64 - expected).abs() <= expected * 0.01,
            "{total:?} (expected {expected:.0} each)"
        );
    }
}
