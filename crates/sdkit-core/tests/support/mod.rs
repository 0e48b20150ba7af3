//! Shared test support of the core's suites: a loopback HTTP world (`http`), an endpointer
//! over numbered generations (`generations`), waiting for a condition with a deadline
//! (`wait`) and fairness of picks from two threads (`fairness`).
pub mod fairness;
pub mod generations;
pub mod http;
pub mod wait;
