//! Retry: call through a balancer (or any service) within an attempt count and a time budget.
//!
//! [`Retry`] makes at most `max_attempts` attempts (total, as go-kit's `lb.Retry`), all inside one
//! total `timeout` budget, with jittered exponential backoff between attempts. A [`Policy`]
//! decides after each failure whether to try again or stop, optionally replacing the error.
//!
//! With no endpoints it never spins: an empty set costs one attempt, then the retry waits for the
//! endpoint set to change (when built with [`Retry::balanced`]) or for its backoff, within the
//! budget. When it gives up, the [`RetryError`] keeps every attempt's error — also when the
//! budget ran out in the middle of an attempt — and implements `std::error::Error` with
//! `source()`.
//!
//! Built with [`Retry::balanced`], each attempt picks through the balancer's feedback path
//! ([`Balancer::pick_with`](crate::lb::Balancer::pick_with)): the attempt's outcome is
//! reported to the endpoint it used, and a retry avoids every endpoint that already failed this
//! call while another ready one exists.
//!
//! A [`RetryBudget`] ([`Retry::with_budget`]) can cap retries across calls (a retry budget, as in
//! Finagle and linkerd): it is told of each call and asked before each retry.
//!
//! `Retry` is a `tower::Service`; [`RetryLayer`] builds it in a `tower::ServiceBuilder`.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::lb::RoundRobin;
//! use sdkit_core::retry::{Decision, Retry, RetryConfig};
//! use sdkit_core::{BoxError, EndpointSet, Instance};
//! use tower::service_fn;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let flaky = service_fn(|_req: &'static str| async { Err::<&str, BoxError>("connection refused".into()) });
//! let healthy = service_fn(|req: &'static str| async move { Ok::<_, BoxError>(req) });
//! let set = EndpointSet::fixed([
//!     (Instance::from_addr("10.0.0.1:80"), tower::util::BoxCloneSyncService::new(flaky)),
//!     (Instance::from_addr("10.0.0.2:80"), tower::util::BoxCloneSyncService::new(healthy)),
//! ]);
//! let retry = Retry::balanced(RoundRobin::new(set), RetryConfig::new(3, Duration::from_secs(1)))
//!     .with_policy(|_attempt: u32, error: &BoxError| {
//!         if error.to_string().contains("refused") { Decision::Retry } else { Decision::Stop(None) }
//!     });
//! // Round-robin sends the first attempt to the flaky endpoint, the second to the healthy one.
//! assert_eq!(retry.call("ping").await.unwrap(), "ping");
//! # }
//! ```

mod error;
mod policy;
mod service;

pub use error::{BudgetExhausted, GaveUp, RetryError};
pub use policy::{Decision, Policy, RetryAll, RetryBudget, RetryConfig};
pub use service::{Retry, RetryLayer};
