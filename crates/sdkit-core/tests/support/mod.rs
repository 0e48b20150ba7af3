//! Shared test support of the core's suites: a loopback HTTP world (`http`) and waiting for a
//! condition with a deadline (`wait`).
pub mod http;
pub mod wait;
