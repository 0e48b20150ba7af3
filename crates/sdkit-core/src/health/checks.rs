//! The probes: [`Check`], [`TcpCheck`], [`HttpCheck`].

use std::fmt;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::BoxError;
use crate::instance::Instance;
use crate::registrar::BoxFuture;

/// Probes one instance: `Ok` when it is healthy. The checker bounds each probe by its timeout.
/// Implement it for other protocols (the gRPC transport implements the gRPC health protocol).
pub trait Check: Send + Sync + 'static {
    /// Checks `instance`.
    fn check(&self, instance: &Instance) -> BoxFuture<'static, Result<(), BoxError>>;
}

impl<F> Check for F
where
    F: Fn(&Instance) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync + 'static,
{
    fn check(&self, instance: &Instance) -> BoxFuture<'static, Result<(), BoxError>> {
        self(instance)
    }
}

/// Healthy when a TCP connection to the instance's address opens.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpCheck;

impl Check for TcpCheck {
    fn check(&self, instance: &Instance) -> BoxFuture<'static, Result<(), BoxError>> {
        let addr = instance.addr().to_owned();
        Box::pin(async move {
            TcpStream::connect(addr.as_str()).await?;
            Ok(())
        })
    }
}

/// Healthy when `GET path` over HTTP/1.1 answers with an expected status (default 200–299).
/// Only the status line is read (at most 1 KiB), and the connection is closed after it.
#[derive(Clone)]
pub struct HttpCheck {
    path: String,
    expected: (u16, u16),
}

impl fmt::Debug for HttpCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCheck")
            .field("path", &self.path)
            .field("expected", &(self.expected.0..=self.expected.1))
            .finish()
    }
}

/// The most bytes read looking for the status line.
const MAX_STATUS_LINE: usize = 1024;

/// The status code of an HTTP/1.x status line, if `line` is one.
fn parse_status(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

impl HttpCheck {
    /// GETs `path` (a leading `/` is added if missing) and expects a 2xx.
    pub fn new(path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        // A path with spaces or line breaks would break the request line: encode them.
        let path = path
            .replace('%', "%25")
            .replace(' ', "%20")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        HttpCheck {
            path,
            expected: (200, 299),
        }
    }

    /// Expects exactly `status`.
    pub fn with_expected_status(mut self, status: u16) -> Self {
        self.expected = (status, status);
        self
    }

    /// Expects a status in `low..=high`.
    pub fn with_expected_range(mut self, low: u16, high: u16) -> Self {
        self.expected = (low.min(high), low.max(high));
        self
    }

    /// The path requested.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Check for HttpCheck {
    fn check(&self, instance: &Instance) -> BoxFuture<'static, Result<(), BoxError>> {
        let addr = instance.addr().to_owned();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: sdkit-health\r\nConnection: close\r\n\r\n",
            self.path
        );
        let (low, high) = self.expected;
        Box::pin(async move {
            let mut stream = TcpStream::connect(addr.as_str()).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut buf = Vec::with_capacity(128);
            let mut chunk = [0u8; 256];
            let line = loop {
                if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                    break &buf[..end];
                }
                if buf.len() >= MAX_STATUS_LINE {
                    return Err("health check: no HTTP status line in the first 1 KiB".into());
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err("health check: connection closed before the status line".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            match parse_status(line) {
                Some(code) if (low..=high).contains(&code) => Ok(()),
                Some(code) => Err(format!("health check: HTTP {code}").into()),
                None => Err("health check: not an HTTP/1 status line".into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status(b"HTTP/2 200"), None);
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(parse_status(&[0xff, 0xfe]), None);
    }

    #[test]
    fn paths_cannot_break_the_request_line() {
        assert_eq!(HttpCheck::new("healthz").path(), "/healthz");
        assert_eq!(HttpCheck::new("/a b\r\nX: y").path(), "/a%20b%0D%0AX:%20y");
    }
}
