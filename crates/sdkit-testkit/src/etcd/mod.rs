//! Real etcd for tests: a single node ([`EtcdCluster::single`]) or a cluster
//! ([`EtcdCluster::start`]) on free loopback ports, each member with its own temporary data
//! directory, started from Debian's `etcd-server` binary (`etcd`).
//!
//! Members can be killed (SIGKILL, by PID: a quorum-less etcd takes seconds to stop on
//! SIGTERM), paused (SIGSTOP, to simulate a hung member), and restarted on the same ports and
//! data; the whole cluster too. Readiness is `GET /health` answering `"health":"true"` within a
//! deadline. Dropping the fixture kills every member and removes the data.
//!
//! ```no_run
//! use sdkit_testkit::etcd::EtcdCluster;
//!
//! let mut cluster = EtcdCluster::start(3).unwrap();
//! let endpoints = cluster.endpoints(); // ["http://127.0.0.1:…", …]
//! cluster.kill(0);
//! cluster.restart(0).unwrap();
//! # drop(endpoints);
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod tls;

pub use tls::EtcdTls;

use crate::process::{ChildProcess, find_binary, free_ports, tcp_accepts, wait_until};

/// How long a (re)started cluster may take to become healthy.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// One etcd member.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP listener for `/health` and `/metrics` (also when clients use TLS).
    metrics_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    runs: u32,
    process: Option<ChildProcess>,
}

/// A running etcd node or cluster. See the [module docs](self).
#[derive(Debug)]
pub struct EtcdCluster {
    dir: PathBuf,
    token: String,
    members: Vec<Member>,
    tls: Option<EtcdTls>,
}

impl EtcdCluster {
    /// One etcd node, healthy.
    ///
    /// # Errors
    ///
    /// When `etcd` is not installed or does not become healthy in time.
    pub fn single() -> io::Result<Self> {
        Self::start(1)
    }

    /// A cluster of `size` members on loopback, every member healthy.
    ///
    /// # Errors
    ///
    /// When `etcd` is not installed or the cluster does not become healthy in time.
    pub fn start(size: usize) -> io::Result<Self> {
        Self::launch(size, false)
    }

    /// A cluster of `size` members whose clients must use TLS with a client certificate
    /// (`--client-cert-auth`); the certificates are in [`tls`](Self::tls).
    ///
    /// # Errors
    ///
    /// When `etcd` or `openssl` is missing, or the cluster does not become healthy in time.
    pub fn start_tls(size: usize) -> io::Result<Self> {
        Self::launch(size, true)
    }

    /// The TLS material of a cluster started with [`start_tls`](Self::start_tls).
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    fn launch(size: usize, tls: bool) -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        if size == 0 {
            return Err(io::Error::other(
                "an etcd cluster needs at least one member",
            ));
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let token = format!(
            "sdkit-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&token);
        std::fs::create_dir_all(&dir)?;
        let ports = free_ports(3 * size);
        let tls = if tls {
            Some(EtcdTls::generate(&dir)?)
        } else {
            None
        };
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[3 * i],
                peer_port: ports[3 * i + 1],
                metrics_port: ports[3 * i + 2],
                data_dir: dir.join(format!("m{i}.etcd")),
                log: dir.join(format!("m{i}-run0.log")),
                runs: 0,
                process: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            dir,
            token,
            members,
            tls,
        };
        cluster.restart_all()?;
        Ok(cluster)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `true` when there are no members (never, for a started cluster).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Client URLs of every member (`http://127.0.0.1:port`, `https://` with TLS).
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Client address of member `i`.
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.members[i].client_port))
    }

    /// Plain-HTTP address of member `i`'s `/health` and `/metrics`.
    pub fn metrics_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.members[i].metrics_port))
    }

    /// The log file of member `i`'s current run (its stdout and stderr).
    pub fn log_path(&self, i: usize) -> &Path {
        &self.members[i].log
    }

    /// `true` while member `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i]
            .process
            .as_mut()
            .is_some_and(ChildProcess::is_running)
    }

    /// Kills member `i` with SIGKILL (idempotent); its data stays for a restart.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.members[i].process.take() {
            process.kill();
        }
    }

    /// Kills every member.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Pauses member `i` with SIGSTOP: its sockets stay open but it answers nothing (a hung
    /// member). [`resume`](Self::resume) continues it.
    ///
    /// # Errors
    ///
    /// When the member is not running.
    pub fn pause(&self, i: usize) -> io::Result<()> {
        self.signal(i, libc::SIGSTOP)
    }

    /// Continues a member paused with [`pause`](Self::pause).
    ///
    /// # Errors
    ///
    /// When the member is not running.
    pub fn resume(&self, i: usize) -> io::Result<()> {
        self.signal(i, libc::SIGCONT)
    }

    fn signal(&self, i: usize, signal: i32) -> io::Result<()> {
        self.members[i]
            .process
            .as_ref()
            .ok_or_else(|| io::Error::other(format!("etcd member {i} is not running")))?
            .signal(signal)
    }

    /// Restarts member `i` (killed before, if running) on the same ports and data, and waits
    /// until it is healthy.
    ///
    /// # Errors
    ///
    /// When it does not become healthy in time.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_healthy(i, READY_DEADLINE)
    }

    /// Restarts every member (killing the running ones first) and waits until all are healthy.
    ///
    /// # Errors
    ///
    /// When the cluster does not become healthy in time.
    pub fn restart_all(&mut self) -> io::Result<()> {
        self.kill_all();
        // Members must start together: none is healthy before a quorum runs.
        for i in 0..self.members.len() {
            self.spawn(i)?;
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i, READY_DEADLINE)?;
        }
        Ok(())
    }

    /// Restarts the members in `which` together (killing the running ones first) and waits
    /// until they are healthy: enough of them must form a quorum.
    ///
    /// # Errors
    ///
    /// When they do not become healthy in time.
    pub fn restart_some(&mut self, which: &[usize]) -> io::Result<()> {
        for &i in which {
            self.kill(i);
        }
        for &i in which {
            self.spawn(i)?;
        }
        for &i in which {
            self.wait_healthy(i, READY_DEADLINE)?;
        }
        Ok(())
    }

    /// `true` when member `i` answers `/health` with `"health":"true"`.
    pub fn is_healthy(&self, i: usize) -> bool {
        http_get(self.metrics_addr(i), "/health")
            .is_ok_and(|body| body.contains("\"health\":\"true\""))
    }

    /// Waits until member `i` is healthy.
    ///
    /// # Errors
    ///
    /// `TimedOut` (naming the member's log) when it is not healthy within `deadline`.
    pub fn wait_healthy(&self, i: usize, deadline: Duration) -> io::Result<()> {
        if wait_until(deadline, || self.is_healthy(i)) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "etcd member {i} not healthy within {deadline:?} (log: {})",
                    self.members[i].log.display()
                ),
            ))
        }
    }

    /// The number of watch streams member `i` currently serves (from its `/metrics`): tells
    /// which member a client's watch is connected to, and whether a watch was closed.
    ///
    /// # Errors
    ///
    /// When the member does not answer or the metric is missing.
    pub fn watch_streams(&self, i: usize) -> io::Result<u64> {
        let body = http_get(self.metrics_addr(i), "/metrics")?;
        let metric = "etcd_debugging_mvcc_watch_stream_total ";
        body.lines()
            .find_map(|line| line.strip_prefix(metric))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .ok_or_else(|| io::Error::other(format!("etcd member {i}: no {metric:?} metric")))
    }

    fn spawn(&mut self, i: usize) -> io::Result<()> {
        let binary = find_binary("etcd").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "etcd not found: install Debian's etcd-server",
            )
        })?;
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let member = &mut self.members[i];
        // A log file per run keeps earlier runs of the member for post-mortems.
        member.runs += 1;
        let log = self
            .dir
            .join(format!("{}-run{}.log", member.name, member.runs));
        member.log = log.clone();
        let member = &self.members[i];
        let client_url = format!(
            "{}://127.0.0.1:{}",
            if self.tls.is_some() { "https" } else { "http" },
            member.client_port
        );
        let metrics_url = format!("http://127.0.0.1:{}", member.metrics_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let mut command = Command::new(binary);
        command
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&member.data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--listen-metrics-urls")
            .arg(&metrics_url)
            // Fast failure detection on loopback.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], member.metrics_port));
        let name = format!("etcd {}", member.name);
        let started = Instant::now();
        // Ready here means "listening"; health (which needs a quorum) is waited for by callers.
        let process = ChildProcess::spawn(name, command, Some(&log), READY_DEADLINE, || {
            tcp_accepts(addr)
        })
        .map_err(|e| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = text.lines().rev().take(5).collect::<Vec<_>>().join("\n");
            io::Error::new(
                e.kind(),
                format!("{e} after {:?}; last log lines:\n{tail}", started.elapsed()),
            )
        })?;
        self.members[i].process = Some(process);
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tiny HTTP/1.1 GET (etcd's `/health` and `/metrics`), bounded to one second.
fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let timeout = Duration::from_secs(1);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    stream.take(8 * 1024 * 1024).read_to_string(&mut body)?;
    if body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200") {
        Ok(body)
    } else {
        Err(io::Error::other(format!(
            "GET {path} on {addr}: {}",
            body.lines().next().unwrap_or("no answer")
        )))
    }
}
