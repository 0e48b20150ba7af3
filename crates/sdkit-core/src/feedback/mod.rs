//! The feedback path's data: what calls report back about one endpoint.
//!
//! Every [`Endpoint`](crate::endpoint::Endpoint) carries an [`EndpointState`](state::EndpointState);
//! call guards record [`Outcome`](outcome::Outcome)s into it, transports, outlier detection and
//! health checks set its readiness bits, and balancers read it. It sits below both the
//! endpoint data and the balancers, and its public items are re-exported from
//! [`lb`](crate::lb) (`sdkit_core::lb::EndpointState`, `sdkit_core::lb::Outcome`, …).

pub(crate) mod outcome;
pub(crate) mod state;
