//! Deterministic subsetting: each client talks to a stable subset of `k` backends.
//!
//! When many clients share one long backend list, connecting every client to every backend
//! costs connections and memory on both sides. A subset of `k` (25 by default, kratos' figure)
//! per client bounds that, as long as the subsets are chosen so that every backend gets about
//! the same number of clients, and change little when the list does:
//!
//! * with a **client index** (a replica number, a StatefulSet ordinal),
//!   [`subset_by_index`] gives exact balance (every backend once per round of `⌈n/k⌉`
//!   clients) with low churn;
//! * with only a **client key** (a host name), [`subset_by_key`] uses rendezvous hashing:
//!   minimal churn, binomial balance.

mod assign;

pub use assign::{subset_by_index, subset_by_key};
