//! Child processes as test fixtures: free loopback ports, readiness with a deadline, SIGKILL by
//! PID on drop.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound once, then released, so another process can take it).
///
/// # Panics
///
/// When the OS has no free port (tests only).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// `n` distinct free TCP ports on 127.0.0.1.
pub fn free_ports(n: usize) -> Vec<u16> {
    // Hold every listener until all are chosen, so the ports are distinct.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// A free UDP port on 127.0.0.1 (for DNS servers).
pub fn free_udp_port() -> u16 {
    loop {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1:0");
        let port = socket.local_addr().expect("local address").port();
        // The same number must be free for TCP too (DNS servers listen on both).
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until `ready()` is true, polling every 10 ms, for at most `deadline`.
///
/// Returns `false` on timeout. This is the only way fixtures and tests wait: for a condition,
/// with a deadline, never a fixed sleep.
pub fn wait_until(deadline: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Async twin of [`wait_until`]: polls `ready` every 10 ms for at most `deadline`.
pub async fn wait_until_async<F>(deadline: Duration, mut ready: F) -> bool
where
    F: FnMut() -> bool,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if ready() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `true` when a TCP connection to `addr` succeeds within 200 ms.
pub fn tcp_accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Finds `binary` on `PATH` (and in `/usr/sbin`, `/sbin`, where Debian puts some daemons).
pub fn find_binary(binary: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain([Path::new("/usr/sbin").into(), Path::new("/sbin").into()])
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// A running child process owned by a test. Dropping it kills it with SIGKILL (by PID) and reaps
/// it.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
}

impl ChildProcess {
    /// Spawns `command` with stdin closed and stdout/stderr sent to `log` (or discarded), then
    /// waits until `ready()` holds, for at most `deadline`.
    ///
    /// # Errors
    ///
    /// When the process cannot start, exits before being ready, or is not ready in time (it is
    /// killed then).
    pub fn spawn(
        name: impl Into<String>,
        mut command: Command,
        log: Option<&Path>,
        deadline: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> io::Result<Self> {
        let name = name.into();
        command.stdin(Stdio::null());
        match log {
            Some(path) => {
                let file = std::fs::File::create(path)?;
                command.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{name}: could not start {command:?}: {e}"),
            )
        })?;
        let mut process = ChildProcess {
            name,
            child: Some(child),
        };
        let mut exited = None;
        let ok = wait_until(deadline, || {
            if let Some(child) = process.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                exited = Some(status);
                return true;
            }
            ready()
        });
        if let Some(status) = exited {
            process.child = None;
            return Err(io::Error::other(format!(
                "{}: exited with {status} before it was ready{}",
                process.name,
                log.map(|p| format!(" (log: {})", p.display()))
                    .unwrap_or_default()
            )));
        }
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{}: not ready within {deadline:?}", process.name),
            ));
        }
        Ok(process)
    }

    /// The process ID, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `true` while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the process with SIGKILL and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL by PID: a quorum-less etcd takes seconds to stop on SIGTERM.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) without waiting.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| io::Error::other(format!("{} is not running", self.name)))?;
        // kill(1) rather than libc::kill: the crate forbids unsafe code.
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{signal} {pid} failed: {status}"
            )))
        }
    }

    /// Waits for the process to exit within `deadline`; returns its exit status.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(deadline, || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(s)) = child.try_wait()
            {
                status = Some(s);
                return true;
            }
            false
        });
        if status.is_some() {
            self.child = None;
        }
        status
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
