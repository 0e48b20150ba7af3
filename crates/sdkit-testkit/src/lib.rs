//! # sdkit-testkit
//!
//! Fixtures for sdkit's tests: real components on free loopback ports. Every fixture waits for
//! readiness with a deadline and is killed (SIGKILL, by PID) when dropped, so a failing test
//! never leaves a process behind.
//!
//! * [`discovery`]: the embedded discovery server in-process, and a counting proxy.
//! * [`process`]: the building block — free ports, [`ChildProcess`], [`wait_until`].
#![deny(missing_docs)]

pub mod discovery;
pub mod process;

pub use process::{
    ChildProcess, free_port, free_ports, free_udp_port, wait_until, wait_until_async,
};
