//! Real ZooKeeper for tests: one server ([`ZooKeeper::single`]) or a three-server ensemble
//! ([`ZooKeeper::ensemble`]) on free loopback ports, from Debian's `zookeeper` package
//! (`/usr/share/java/zookeeper.jar`, run directly with `java`, no systemd), each server with its
//! own temporary data directory.
//!
//! Servers can be killed (SIGKILL, by PID) and restarted on the same ports and data; the
//! fixture tells which one leads. Readiness is the `srvr` four-letter word answering with a
//! `Mode:` line (a server outside a quorum answers that it is not serving) within a deadline.
//! The JVM starts in a few seconds, so tests should start as few servers as they need.
//! Dropping the fixture kills every server and removes the data.
//!
//! Timing: `tickTime` 500 ms, so sessions may last 1 s to 30 s (`minSessionTimeout` /
//! `maxSessionTimeout`).
//!
//! ```no_run
//! use sdkit_testkit::zookeeper::ZooKeeper;
//!
//! let mut zk = ZooKeeper::ensemble().unwrap();
//! let connect = zk.connect_string(); // "127.0.0.1:…,127.0.0.1:…,127.0.0.1:…"
//! let leader = zk.leader().unwrap();
//! zk.kill(leader);
//! zk.restart(leader).unwrap();
//! # drop(connect);
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::process::{ChildProcess, find_binary, free_ports, wait_until};

/// Where Debian's `zookeeper` package (through `libzookeeper-java`) puts the server.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// A logging backend for the server's slf4j (without it the server logs nothing).
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
/// How long a (re)started server may take to serve: a JVM on a loaded 2-core machine.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// One server of the ensemble.
#[derive(Debug)]
struct Server {
    id: usize,
    client_port: u16,
    peer_port: u16,
    election_port: u16,
    dir: PathBuf,
    log: PathBuf,
    runs: u32,
    process: Option<ChildProcess>,
}

/// A running ZooKeeper server or ensemble. See the [module docs](self).
#[derive(Debug)]
pub struct ZooKeeper {
    dir: PathBuf,
    servers: Vec<Server>,
}

impl ZooKeeper {
    /// One standalone server, serving.
    ///
    /// # Errors
    ///
    /// When java or ZooKeeper is not installed, or the server does not serve in time.
    pub fn single() -> io::Result<Self> {
        Self::start(1)
    }

    /// A three-server ensemble, every server serving (one leader, two followers).
    ///
    /// # Errors
    ///
    /// When java or ZooKeeper is not installed, or the ensemble does not serve in time.
    pub fn ensemble() -> io::Result<Self> {
        Self::start(3)
    }

    fn start(size: usize) -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        if !Path::new(ZOOKEEPER_JAR).is_file() || find_binary("java").is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{ZOOKEEPER_JAR} or java not found: install Debian's zookeeper"),
            ));
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "sdkit-zk-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let ports = free_ports(3 * size);
        let servers = (0..size)
            .map(|i| Server {
                id: i + 1,
                client_port: ports[3 * i],
                peer_port: ports[3 * i + 1],
                election_port: ports[3 * i + 2],
                dir: dir.join(format!("zk{}", i + 1)),
                log: dir.join(format!("zk{}-run0.log", i + 1)),
                runs: 0,
                process: None,
            })
            .collect();
        let mut zk = ZooKeeper { dir, servers };
        for i in 0..size {
            zk.write_config(i)?;
        }
        // Servers of an ensemble must start together: none serves before a quorum runs.
        for i in 0..size {
            zk.spawn(i)?;
        }
        for i in 0..size {
            zk.wait_serving(i, READY_DEADLINE)?;
        }
        Ok(zk)
    }

    fn write_config(&self, i: usize) -> io::Result<()> {
        let server = &self.servers[i];
        std::fs::create_dir_all(server.dir.join("data"))?;
        let mut cfg = format!(
            "tickTime=500\ninitLimit=20\nsyncLimit=10\n\
             dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             minSessionTimeout=1000\nmaxSessionTimeout=30000\n\
             admin.enableServer=false\n4lw.commands.whitelist=srvr,ruok,stat,cons,mntr\n\
             maxClientCnxns=0\n",
            server.dir.join("data").display(),
            server.client_port
        );
        if self.servers.len() > 1 {
            std::fs::write(
                server.dir.join("data").join("myid"),
                format!("{}\n", server.id),
            )?;
            for s in &self.servers {
                cfg.push_str(&format!(
                    "server.{}=127.0.0.1:{}:{}\n",
                    s.id, s.peer_port, s.election_port
                ));
            }
        }
        std::fs::write(server.dir.join("zoo.cfg"), cfg)
    }

    fn spawn(&mut self, i: usize) -> io::Result<()> {
        let java = find_binary("java")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "java not found"))?;
        let server = &mut self.servers[i];
        server.runs += 1;
        server.log = self
            .dir
            .join(format!("zk{}-run{}.log", server.id, server.runs));
        let mut command = Command::new(java);
        command
            .args([
                "-Xmx192m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-Dzookeeper.jmx.log4j.disable=true",
                "-cp",
            ])
            .arg(format!("{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}"))
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(server.dir.join("zoo.cfg"));
        let name = format!("zookeeper server {}", server.id);
        // Readiness is checked by the caller (an ensemble's servers start together).
        let process =
            ChildProcess::spawn(name, command, Some(&server.log), READY_DEADLINE, || true)?;
        server.process = Some(process);
        Ok(())
    }

    /// The number of servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// `true` when there are no servers (never, for a started fixture).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Client address of server `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.servers[i].client_port))
    }

    /// Every server as `host:port`.
    pub fn servers(&self) -> Vec<String> {
        (0..self.servers.len())
            .map(|i| self.addr(i).to_string())
            .collect()
    }

    /// The connect string of the whole ensemble: `host:port,host:port,…`.
    pub fn connect_string(&self) -> String {
        self.servers().join(",")
    }

    /// The log file of server `i`'s current run.
    pub fn log_path(&self, i: usize) -> &Path {
        &self.servers[i].log
    }

    /// `true` while server `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.servers[i]
            .process
            .as_mut()
            .is_some_and(ChildProcess::is_running)
    }

    /// Kills server `i` with SIGKILL (idempotent); its data stays for a restart.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.servers[i].process.take() {
            process.kill();
        }
    }

    /// Restarts server `i` (killed first, if running) on the same ports and data, and waits
    /// until it serves again.
    ///
    /// # Errors
    ///
    /// When it does not serve in time.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_serving(i, READY_DEADLINE)
    }

    /// What server `i` answers to `srvr`: its `Mode:` (`standalone`, `leader`, `follower`), or
    /// `None` while it does not serve.
    pub fn mode(&self, i: usize) -> Option<String> {
        let answer = four_letter_word(self.addr(i), "srvr").ok()?;
        answer
            .lines()
            .find_map(|l| l.strip_prefix("Mode:"))
            .map(|m| m.trim().to_owned())
    }

    /// The index of the server that leads the ensemble now (a standalone server leads itself).
    pub fn leader(&self) -> Option<usize> {
        (0..self.servers.len())
            .find(|&i| matches!(self.mode(i).as_deref(), Some("leader" | "standalone")))
    }

    /// The number of client connections server `i` holds (from `srvr`).
    pub fn connections(&self, i: usize) -> Option<u32> {
        let answer = four_letter_word(self.addr(i), "srvr").ok()?;
        answer
            .lines()
            .find_map(|l| l.strip_prefix("Connections:"))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Waits until server `i` serves clients.
    ///
    /// # Errors
    ///
    /// `TimedOut` (naming the server's log) when it does not serve within `deadline`.
    pub fn wait_serving(&self, i: usize, deadline: Duration) -> io::Result<()> {
        if wait_until(deadline, || self.mode(i).is_some()) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "zookeeper server {} not serving within {deadline:?} (log: {})",
                    self.servers[i].id,
                    self.servers[i].log.display()
                ),
            ))
        }
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        for server in &mut self.servers {
            if let Some(mut process) = server.process.take() {
                process.kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends a four-letter word (`srvr`, `ruok`, …) to `addr` and returns the whole answer.
///
/// # Errors
///
/// When the server does not accept the connection or does not answer within 2 s.
pub fn four_letter_word(addr: SocketAddr, word: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(word.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
