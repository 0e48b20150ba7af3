//! Shared test support of the core's suites: a loopback HTTP world (`http`), an endpointer
//! over numbered generations (`generations`) and waiting for a condition with a deadline
//! (`wait`).
pub mod generations;
pub mod http;
pub mod wait;
