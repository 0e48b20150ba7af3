//! Bench support: the server under test runs in a child process (this same executable with
//! `SDKIT_BENCH_CHILD` set), so its resident memory is measured alone and the file
//! descriptors of 10 000 parked polls are split between two processes. The parent talks
//! to the child over stdin/stdout for readiness and statistics.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;

/// Environment variable selecting the child role: `discovery` (default limits),
/// `discovery-wide` (per-address limits lifted) or `bare`.
pub const CHILD_ENV: &str = "SDKIT_BENCH_CHILD";

/// The child side: serve on 127.0.0.1:0, print `addr <addr>`, answer `stats` lines, exit
/// when stdin closes.
pub fn child_main(kind: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = if kind == "bare" {
            tokio::spawn(bare_server(listener));
            None
        } else {
            let mut builder = sdkit_discovery_server::Server::builder()
                .env("bench")
                .zone("z1");
            if kind == "discovery-wide" {
                // One load generator stands for many hosts: lift the per-address budgets
                // and the connection total (10 000 parked polls on their own connections).
                builder = builder.limits(sdkit_discovery_server::Limits {
                    max_connections: 30_000,
                    max_connections_per_addr: 30_000,
                    max_parked_polls_per_addr: 50_000,
                    ..sdkit_discovery_server::Limits::default()
                });
            }
            let server = builder.build().expect("config");
            let handle = server.handle();
            tokio::spawn(server.serve(listener));
            Some(handle)
        };
        println!("addr {addr}");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            if line.trim() == "stats" {
                let parked = handle.as_ref().map_or(0, |h| h.stats().parked_polls);
                let instances = handle.as_ref().map_or(0, |h| h.stats().instances);
                println!("stats {parked} {instances}");
                let _ = std::io::stdout().flush();
            }
        }
        if let Some(h) = handle {
            h.shutdown();
        }
    });
}

/// The baseline: hyper answering a fixed 200 after reading the body, same connection setup.
async fn bare_server(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"ok",
                    ))))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A server child process.
pub struct Child {
    proc: std::process::Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub addr: SocketAddr,
}

impl Child {
    pub fn spawn(kind: &str) -> Child {
        let exe = std::env::current_exe().expect("current exe");
        let mut proc = Command::new(exe)
            .env(CHILD_ENV, kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdin = proc.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(proc.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("addr line");
        let addr = line
            .trim()
            .strip_prefix("addr ")
            .expect("addr prefix")
            .parse()
            .expect("addr");
        Child {
            proc,
            stdin,
            stdout,
            addr,
        }
    }

    /// (parked polls, instances)
    pub fn stats(&mut self) -> (usize, usize) {
        writeln!(self.stdin, "stats").expect("write stats");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("stats line");
        let mut parts = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().expect("number"));
        (
            parts.next().expect("parked"),
            parts.next().expect("instances"),
        )
    }

    /// Resident set size of the child, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// CPU time (user, system) the child has used so far.
    pub fn cpu_time(&self) -> (Duration, Duration) {
        cpu_time_of(&self.proc.id().to_string())
    }

    /// Waits (bounded) until `n` polls are parked.
    pub fn wait_parked(&mut self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while self.stats().0 != n {
            assert!(std::time::Instant::now() < deadline, "polls never parked");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// (user, system) CPU time of this process (the load generator).
pub fn own_cpu_time() -> (Duration, Duration) {
    cpu_time_of("self")
}

/// (user, system) CPU time of process `pid` (or `self`) from `/proc/<pid>/stat`.
fn cpu_time_of(pid: &str) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).expect("stat format");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i].parse::<u64>().expect("cpu ticks");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let time = |t: u64| Duration::from_millis(t * 1000 / hz);
    (time(ticks(11)), time(ticks(12)))
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// One HTTP/1.1 keep-alive connection.
pub async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// Sends a request and reads the whole body.
pub async fn send(sender: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>) -> Bytes {
    sender.ready().await.expect("ready");
    let resp = sender.send_request(req).await.expect("response");
    assert!(resp.status().is_success(), "HTTP {}", resp.status());
    resp.into_body().collect().await.expect("body").to_bytes()
}

pub fn get(addr: SocketAddr, path_and_query: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}{path_and_query}"))
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("request")
}

pub fn post(addr: SocketAddr, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(body))
        .expect("request")
}

/// The `q`-quantile (0..=1) of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[idx.min(samples.len() - 1)]
}

pub fn register_form(appid: &str, host: &str) -> Bytes {
    Bytes::from(format!(
        "zone=z1&env=bench&appid={appid}&hostname={host}&status=1&region=r1&version=v1.2.3\
         &addrs=grpc%3A%2F%2F10.0.0.1%3A9000&addrs=http%3A%2F%2F10.0.0.1%3A8000\
         &metadata=%7B%22weight%22%3A%2210%22%2C%22color%22%3A%22red%22%7D"
    ))
}

/// The cursor in a fetch/polls answer for `appid` (polls) or at top level (fetch).
pub fn cursor_of(body: &[u8], appid: Option<&str>) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(body).expect("json");
    let data = match appid {
        Some(a) => &v["data"][a],
        None => &v["data"],
    };
    data["latest_timestamp"]
        .as_i64()
        .unwrap_or_else(|| panic!("no cursor in {v}"))
}

/// A minimal HTTP/1.1 keep-alive client for the many-connections benchmark: it writes a
/// prepared request and reads one `Content-Length` response, with far less CPU per request
/// than a full client, so the load generator disturbs the measured server less on 2 cores.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `GET <path_and_query>` and returns the body.
    pub async fn get(&mut self, path_and_query: &str) -> Bytes {
        use tokio::io::AsyncWriteExt;
        let req = format!("GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.stream.write_all(req.as_bytes()).await.expect("write");
        self.buf.clear();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).expect("head");
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("content-length");
                let total = end + 4 + len;
                while self.buf.len() < total {
                    self.read_more().await;
                }
                return Bytes::copy_from_slice(&self.buf[end + 4..total]);
            }
            self.read_more().await;
        }

        fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
            hay.windows(needle.len()).position(|w| w == needle)
        }
    }

    async fn read_more(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}
