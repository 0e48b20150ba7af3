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
pub const EVENTUALLY: Duration = Duration::from_secs(15);

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

pub fn ids(s: &Snapshot) -> Vec<String> {
    s.instances().iter().map(|i| i.id().to_string()).collect()
}

/// Waits (with a deadline) for a state that satisfies `pred`.
pub async fn until(
    sub: &mut Subscription,
    what: &str,
    pred: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    if let Some(s) = sub.current()
        && pred(&s)
    {
        return s;
    }
    loop {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(s)) if pred(&s) => return s,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("subscription ended while waiting for {what}"),
            Err(_) => panic!(
                "timed out waiting for {what}; last state: {:?}",
                sub.current()
            ),
        }
    }
}

/// Waits (with a deadline) for a condition on the double.
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        sdkit_testkit::wait_until_async(EVENTUALLY, cond).await,
        "timed out waiting for {what}"
    );
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
