//! Helpers shared by the Consul backend's integration tests.
#![allow(dead_code)]

use sdkit_core::Backoff;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sdkit_consul::{Client, Config, InstancerConfig};
use sdkit_core::{Snapshot, Subscription};
use sdkit_testkit::ConsulDouble;

/// The generous deadline for "eventually" on a loaded machine.
#[allow(unused_imports)]
pub use sdkit_testkit::wait::{EVENTUALLY, eventually, ids};

pub fn client(double: &ConsulDouble) -> Client {
    Client::new(Config::new(double.url())).expect("client")
}

/// Test-speed watch settings: a short wait so in-flight queries end quickly.
pub fn watch(service: &str) -> InstancerConfig {
    InstancerConfig::new(service)
        .with_wait(Duration::from_secs(2))
        .with_backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(500),
        ))
}

/// Waits (with a deadline) for a state that satisfies `pred`.
pub async fn until(
    sub: &mut Subscription,
    what: &str,
    pred: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    sdkit_testkit::wait::wait_for(sub, EVENTUALLY, what, pred).await
}

/// A log sink for `tracing_subscriber` that keeps everything written to it.
#[derive(Clone, Default)]
pub struct LogBuffer(pub Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
