//! A real Prometheus for tests, from Debian's `prometheus` package: one server on a free
//! loopback port with a temporary configuration and storage, scraping the given targets every
//! second. Readiness is `GET /-/ready` answering 200 within a deadline; dropping the fixture
//! kills the server (by PID) and removes its directory. [`check_metrics`] runs
//! `promtool check metrics` on an exposition.
//!
//! ```no_run
//! use sdkit_testkit::prometheus::Prometheus;
//! use std::time::Duration;
//!
//! let target: std::net::SocketAddr = "127.0.0.1:9171".parse().unwrap();
//! let prom = Prometheus::scraping(&[target]).unwrap();
//! let up = prom
//!     .wait_for_value("up", Duration::from_secs(30), |v| v == 1.0)
//!     .unwrap();
//! assert_eq!(up, 1.0);
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::process::{ChildProcess, find_binary, free_port, wait_until};

/// How long Prometheus may take to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// The scrape job's name (the `job` label of every scraped series).
pub const JOB: &str = "sdkit";

/// A running Prometheus. See the [module docs](self).
#[derive(Debug)]
pub struct Prometheus {
    dir: PathBuf,
    addr: SocketAddr,
    process: ChildProcess,
}

impl Prometheus {
    /// Starts Prometheus scraping `/metrics` on every target each second, and waits until
    /// it is ready.
    ///
    /// # Errors
    ///
    /// When `prometheus` is not installed or not ready in time.
    pub fn scraping(targets: &[SocketAddr]) -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let binary = find_binary("prometheus").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "prometheus is not installed (Debian package `prometheus`; see `cargo xtask tools`)",
            )
        })?;
        let dir = std::env::temp_dir().join(format!(
            "sdkit-prometheus-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            // Series are queried as soon as they are scraped, not 5 minutes back.
            .arg("--query.lookback-delta=5s")
            .arg("--log.level=warn")
            .current_dir(&dir);
        let log = dir.join("prometheus.log");
        let process =
            match ChildProcess::spawn("prometheus", command, Some(&log), READY_DEADLINE, || {
                get(addr, "/-/ready").is_ok()
            }) {
                Ok(process) => process,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            };
        Ok(Prometheus { dir, addr, process })
    }

    /// The HTTP address (`/api/v1/…`, `/-/ready`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs an instant query; returns `data.result` (a JSON array of `{metric, value}`).
    ///
    /// # Errors
    ///
    /// When Prometheus does not answer or answers an error.
    pub fn query(&self, promql: &str) -> io::Result<Vec<serde_json::Value>> {
        let path = format!(
            "/api/v1/query?query={}",
            utf8_percent_encode(promql, NON_ALPHANUMERIC)
        );
        let body = get(self.addr, &path)?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| io::Error::other(format!("query {promql}: {e}: {body}")))?;
        if json["status"] != "success" {
            return Err(io::Error::other(format!("query {promql}: {body}")));
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The value of a query returning one series, if it returns exactly one.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn value(&self, promql: &str) -> io::Result<Option<f64>> {
        let result = self.query(promql)?;
        Ok(match result.as_slice() {
            [one] => one["value"][1].as_str().and_then(|v| v.parse().ok()),
            _ => None,
        })
    }

    /// Polls `promql` until it returns one series whose value satisfies `ok`, for at most
    /// `deadline`; returns that value.
    ///
    /// # Errors
    ///
    /// On timeout, naming the last answer.
    pub fn wait_for_value(
        &self,
        promql: &str,
        deadline: Duration,
        mut ok: impl FnMut(f64) -> bool,
    ) -> io::Result<f64> {
        let mut last = Err(io::Error::other("never queried"));
        let found = wait_until(deadline, || {
            last = self.value(promql);
            matches!(last, Ok(Some(v)) if ok(v))
        });
        match last {
            Ok(Some(v)) if found => Ok(v),
            other => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{promql}: no satisfying value within {deadline:?} (last answer: {other:?}; \
                     log: {})",
                    self.dir.join("prometheus.log").display()
                ),
            )),
        }
    }

    /// `true` while the server runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `promtool check metrics` with `exposition` on stdin: `Ok` when it finds nothing,
/// otherwise its complaints.
///
/// # Errors
///
/// When promtool is missing, or rejects or lints the exposition.
pub fn check_metrics(exposition: &str) -> io::Result<()> {
    let binary = find_binary("promtool").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "promtool is not installed (Debian package `prometheus`)",
        )
    })?;
    let mut child = Command::new(binary)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(exposition.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "promtool check metrics ({}): {said}",
            out.status
        )))
    }
}

/// An HTTP/1.0 GET (no chunked answers) bounded to 5 s; the body of a 200 answer.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let timeout = Duration::from_secs(5);
    let end = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut answer = String::new();
    stream.take(16 * 1024 * 1024).read_to_string(&mut answer)?;
    if Instant::now() > end {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "GET took too long"));
    }
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("GET {path} on {addr}: no header end")))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body.to_owned())
    } else {
        Err(io::Error::other(format!("GET {path} on {addr}: {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_accepts_good_and_rejects_bad_expositions() {
        if find_binary("promtool").is_none() {
            panic!("promtool is not installed (Debian package `prometheus`)");
        }
        let good = "# HELP a_total A counter.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n";
        check_metrics(good).unwrap_or_else(|e| panic!("{e}"));
        let no_help = "a_total 1\n";
        assert!(check_metrics(no_help).is_err());
        let garbage = "# TYPE a counter\na{x=\"1\" 3\n";
        assert!(check_metrics(garbage).is_err());
    }
}
