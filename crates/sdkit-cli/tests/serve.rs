//! Runs the built `sdkit serve` binary: address line, one request, SIGTERM, exit 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn serve_prints_address_answers_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdkit"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--env",
            "prod",
            "--zone",
            "sh001",
            "--hold",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sdkit");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(DEADLINE) {
        Ok(line) => line,
        Err(e) => {
            let _ = child.kill();
            panic!("no address line: {e}");
        }
    };
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));

    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(conn, "GET /discovery/fetch?env=dev&appid=infra.discovery&status=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""code":0"#), "{answer}");
    assert!(
        answer.contains(&format!("http://{addr}")),
        "infra.discovery visible from env dev: {answer}"
    );

    // SAFETY: plain kill(2) on the child's pid, which we own and have not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sdkit serve did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn help_shows_examples() {
    let out = Command::new(env!("CARGO_BIN_EXE_sdkit"))
        .args(["serve", "--help"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Examples:") && text.contains("--listen"),
        "{text}"
    );
}
