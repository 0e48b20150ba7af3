//! `sdkit serve` access control from the command line: the token from
//! `SDKIT_SERVE_TOKEN` guards writes and never shows in the output; a non-loopback listener
//! without a token logs a loud warning.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// A running `sdkit serve`, its address, and its stderr lines as they come.
struct Serve {
    child: Child,
    addr: String,
    stderr: mpsc::Receiver<String>,
}

impl Serve {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sdkit"));
        cmd.arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sdkit");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let (etx, erx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if etx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx.recv_timeout(DEADLINE).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("no address line: {e}")
        });
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .to_owned();
        Serve {
            child,
            addr,
            stderr: erx,
        }
    }

    /// Waits for a stderr line containing `needle`; returns every line read so far.
    fn stderr_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(100)) {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
        }
        panic!("no stderr line with {needle:?}: {seen:#?}");
    }

    fn request(&self, port_host: &str, head_and_body: &str) -> String {
        let port = self.addr.rsplit_once(':').expect("port").1;
        let mut conn = TcpStream::connect(format!("{port_host}:{port}")).expect("connect");
        conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
        conn.write_all(head_and_body.as_bytes()).expect("write");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("read");
        answer
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn register(auth: Option<&str>) -> String {
    let body = "zone=z&env=dev&appid=a.app&hostname=h&status=1&addrs=http://127.0.0.1:1";
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "POST /discovery/register HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn the_token_from_the_environment_guards_writes_and_stays_secret() {
    let serve = Serve::start(
        &["--listen", "127.0.0.1:0"],
        &[("SDKIT_SERVE_TOKEN", "s3cret-value")],
    );
    let refused = serve.request("127.0.0.1", &register(None));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let refused = serve.request("127.0.0.1", &register(Some("Bearer wrong")));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let ok = serve.request("127.0.0.1", &register(Some("Bearer s3cret-value")));
    assert!(ok.contains(r#""code":0"#), "{ok}");
    let lines = serve.stderr_until("discovery server listening");
    assert!(
        lines.iter().all(|l| !l.contains("s3cret-value")),
        "token in the logs: {lines:#?}"
    );
    assert!(lines.iter().all(|l| !l.contains("NON-LOOPBACK")));
}

#[test]
fn a_non_loopback_listener_without_a_token_warns_loudly() {
    let serve = Serve::start(&["--listen", "0.0.0.0:0"], &[]);
    let lines = serve.stderr_until("NON-LOOPBACK ADDRESS WITHOUT A TOKEN");
    assert!(lines.iter().any(|l| l.contains("WARN")), "{lines:#?}");
    // The Host check applies to loopback listeners only: any name works here.
    let answer = serve.request(
        "127.0.0.1",
        "GET /discovery/fetch?env=dev&appid=infra.discovery&status=1 HTTP/1.1\r\n\
         Host: registry.example\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.contains(r#""code":0"#), "{answer}");
}

#[test]
fn token_reads_without_a_token_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_sdkit"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token-reads"])
        .env_remove("SDKIT_SERVE_TOKEN")
        .output()
        .expect("run sdkit");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-reads needs a token"));
}
