//! Log capture for tests that check what is (and is not) logged: a global `tracing` subscriber
//! at TRACE level, every target, writing into a buffer the test reads.
//!
//! Under nextest each test runs in its own process, so the global subscriber is the test's own.
//!
//! ```
//! use sdkit_testkit::logs::Captured;
//!
//! let logs = Captured::install();
//! tracing::warn!(secret = "***", "something failed");
//! assert!(logs.text().contains("something failed"));
//! ```

use std::sync::{Arc, Mutex, PoisonError};

/// Captured log output. See the [module docs](self).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Installs the global subscriber writing into the returned buffer. When a subscriber is
    /// already installed in this process, the buffer stays empty.
    pub fn install() -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        captured
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
