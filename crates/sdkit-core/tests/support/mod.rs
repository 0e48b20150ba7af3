//! Shared test support.
pub mod http;
