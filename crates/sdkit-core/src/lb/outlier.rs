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
//! [`OutlierDetector::spawn`] binds detection to an [`EndpointSet`](crate::EndpointSet): every
//! outcome recorded on an endpoint's state (by a call guard or a transport) is counted, failures
//! of the configured [`FailureClasses`] count as failures, and ejection sets the endpoint's
//! `ejected` readiness bit, which every balancer skips (down to the panic threshold).
//! [`Detector`] is the state machine underneath (time passed in, no task, no lock); [`Counters`]
//! are the lock-free per-endpoint counters the call path updates.

mod config;
mod detector;
mod driver;

pub use config::{FailureClasses, FailurePercentage, OutlierConfig, SuccessRate};
pub use detector::{Change, Counters, Detector, Reason};
pub use driver::{OutlierDetector, OutlierEvent};
