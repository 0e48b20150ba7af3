//! A real DNS server for tests: Debian's `dnsmasq` on a free loopback port, serving one zone of
//! SRV and address records.
//!
//! dnsmasq runs without root on a port above 1024, answers NXDOMAIN for unknown names inside the
//! zone (`--local=/zone/`), and serves records with the zone's TTL (`--local-ttl`; its default is
//! 0). It does **not** reload `--srv-host` records on SIGHUP, so [`Dnsmasq::restart`] changes
//! records by killing it and starting it again on the same port. [`Dnsmasq::stop`] and
//! [`Dnsmasq::resume`] simulate an outage.
//!
//! ```no_run
//! use sdkit_testkit::dnsmasq::{Dnsmasq, Zone};
//!
//! let zone = Zone::new("demo.local", 2)
//!     .srv("_http._tcp.demo.local", "a.demo.local", 8080, 0, 10)
//!     .host("a.demo.local", "127.0.0.2".parse().unwrap());
//! let dns = Dnsmasq::start(zone).unwrap();
//! println!("DNS server at {}", dns.addr());
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::{ChildProcess, find_binary, free_udp_port, tcp_accepts};

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    /// The full SRV name (`_http._tcp.demo.local`).
    pub name: String,
    /// The target host name (`.` for "service not available").
    pub target: String,
    /// The port.
    pub port: u16,
    /// The priority (lower is preferred).
    pub priority: u16,
    /// The weight within a priority.
    pub weight: u16,
}

/// The records dnsmasq serves: one local zone, its TTL, SRV records and address records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    domain: String,
    ttl: u32,
    srv: Vec<SrvRecord>,
    hosts: Vec<(String, IpAddr)>,
}

impl Zone {
    /// An empty zone `domain` whose records carry `ttl` seconds.
    pub fn new(domain: impl Into<String>, ttl: u32) -> Self {
        Zone {
            domain: domain.into(),
            ttl,
            srv: Vec::new(),
            hosts: Vec::new(),
        }
    }

    /// Adds an SRV record.
    pub fn srv(
        mut self,
        name: impl Into<String>,
        target: impl Into<String>,
        port: u16,
        priority: u16,
        weight: u16,
    ) -> Self {
        self.srv.push(SrvRecord {
            name: name.into(),
            target: target.into(),
            port,
            priority,
            weight,
        });
        self
    }

    /// Adds an address record (A for IPv4, AAAA for IPv6); call it again for more addresses.
    pub fn host(mut self, name: impl Into<String>, ip: IpAddr) -> Self {
        self.hosts.push((name.into(), ip));
        self
    }

    /// The zone's domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The TTL of every record, in seconds.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The SRV records.
    pub fn srv_records(&self) -> &[SrvRecord] {
        &self.srv
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--local=/{}/", self.domain),
            format!("--local-ttl={}", self.ttl),
        ];
        for r in &self.srv {
            args.push(format!(
                "--srv-host={},{},{},{},{}",
                r.name, r.target, r.port, r.priority, r.weight
            ));
        }
        for (name, ip) in &self.hosts {
            args.push(format!("--host-record={name},{ip}"));
        }
        args
    }
}

/// A dnsmasq process serving a [`Zone`] on `127.0.0.1:<port>` (UDP and TCP). Killed on drop.
#[derive(Debug)]
pub struct Dnsmasq {
    process: Option<ChildProcess>,
    /// While stopped: the port held (UDP and TCP) so that no other test's process takes it
    /// before [`resume`](Dnsmasq::resume) — another DNS server there would answer for us.
    reserved: Option<(std::net::UdpSocket, std::net::TcpListener)>,
    port: u16,
    zone: Zone,
    log: PathBuf,
    starts: u32,
}

impl Dnsmasq {
    /// Starts dnsmasq on a port free for both UDP and TCP and waits (≤ 10 s) until it accepts
    /// TCP connections.
    ///
    /// # Errors
    ///
    /// When `dnsmasq` is not installed (`apt-get install dnsmasq`), or it does not start in time.
    pub fn start(zone: Zone) -> io::Result<Self> {
        let mut dns = Dnsmasq {
            process: None,
            reserved: None,
            port: free_udp_port(),
            zone,
            log: PathBuf::new(),
            starts: 0,
        };
        // A port free a moment ago may have been taken since (another test's client socket):
        // then dnsmasq exits at once, and another port is tried.
        let mut attempts = 0;
        loop {
            match dns.resume() {
                Ok(()) => return Ok(dns),
                Err(e) if e.kind() == io::ErrorKind::NotFound || attempts == 4 => return Err(e),
                Err(_) => {
                    attempts += 1;
                    dns.port = free_udp_port();
                }
            }
        }
    }

    /// The server address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The zone being served (or served before [`stop`](Self::stop)).
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The log file of the current (or last) run, with every query logged.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// How many queries of `qtype` (`"SRV"`, `"A"`, `"AAAA"`) for `name` the current run has
    /// logged so far (dnsmasq runs with `--log-queries`).
    pub fn query_count(&self, qtype: &str, name: &str) -> usize {
        let needle = format!("query[{qtype}] {name} from ");
        std::fs::read_to_string(&self.log)
            .map(|log| log.lines().filter(|l| l.contains(&needle)).count())
            .unwrap_or(0)
    }

    /// `true` while dnsmasq runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ChildProcess::is_running)
    }

    /// Kills dnsmasq (SIGKILL) and holds its port until [`resume`](Self::resume): queries go
    /// unanswered and time out, as with a crashed server, and no other process can take the
    /// port meanwhile. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
            // Best effort: if the port cannot be held, a stopped server is still stopped.
            if let (Ok(udp), Ok(tcp)) = (
                std::net::UdpSocket::bind(addr),
                std::net::TcpListener::bind(addr),
            ) {
                self.reserved = Some((udp, tcp));
            }
        }
    }

    /// Stops dnsmasq without holding its port (for the end of a fixture's life).
    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        self.reserved = None;
    }

    /// Starts dnsmasq again on the same port with the current zone (after [`stop`](Self::stop));
    /// does nothing when it runs.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn resume(&mut self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        // Release the held port right before dnsmasq binds it again.
        self.reserved = None;
        self.remove_log();
        let binary = find_binary("dnsmasq").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "dnsmasq is not installed (apt-get install -y dnsmasq)",
            )
        })?;
        self.starts += 1;
        self.log = std::env::temp_dir().join(format!(
            "sdkit-dnsmasq-{}-{}-{}.log",
            std::process::id(),
            self.port,
            self.starts
        ));
        let mut command = Command::new(binary);
        command.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--pid-file=",
            &format!("--port={}", self.port),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--log-facility=-",
            "--log-queries",
        ]);
        command.args(self.zone.args());
        let addr = self.addr();
        let process = ChildProcess::spawn(
            format!("dnsmasq on {addr}"),
            command,
            Some(&self.log),
            Duration::from_secs(10),
            || tcp_accepts(addr),
        )?;
        self.process = Some(process);
        Ok(())
    }

    /// Serves `zone` instead: kills dnsmasq and starts it again on the same port (dnsmasq does
    /// not reload SRV records on SIGHUP).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn restart(&mut self, zone: Zone) -> io::Result<()> {
        self.stop();
        self.zone = zone;
        self.resume()
    }

    fn remove_log(&self) {
        if !self.log.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Drop for Dnsmasq {
    /// Kills dnsmasq; its log is removed unless the test is failing (panicking), so that a
    /// failure can be diagnosed from it.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("dnsmasq log kept: {}", self.log.display());
        } else {
            self.remove_log();
        }
    }
}
