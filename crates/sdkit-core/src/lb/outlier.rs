//! Passive outlier detection: endpoints whose calls fail are ejected for a while, then return.
//!
//! Three rules, as in Envoy and gRPC (A50), evaluated over the outcomes the call path reports:
//!
//! * **consecutive failures** (Envoy): `consecutive_failures` failures in a row (default 5) eject
//!   the endpoint at once;
//! * **success rate** (A50): every `interval` (10 s), among endpoints with at least
//!   `request_volume` (100) calls, one whose success rate is below `mean − 1.9 × stdev` is
//!   ejected (when at least `minimum_hosts`, 5, qualify);
//! * **failure percentage** (A50): every interval, an endpoint with at least 50 calls and more
//!   than 85 % failures is ejected (when there are at least 5 endpoints).
//!
//! An ejection lasts `base_ejection_time × n` (30 s × n, at most 300 s), where n counts the
//! endpoint's ejections, less one per interval it spent not ejected. At most
//! `max_ejection_percent` (10 %) of the endpoints are ejected at once, but one endpoint may always
//! be. An ejected endpoint returns as soon as its time runs out.
//!
//! [`Detector`] is the state machine (time passed in, no task, no lock); [`Counters`] are the
//! lock-free per-endpoint counters the call path updates.

mod config;
mod detector;

pub use config::{FailurePercentage, OutlierConfig, SuccessRate};
pub use detector::{Change, Counters, Detector, Reason};
