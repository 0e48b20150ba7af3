//! End-to-end tests of the built `sdkit` binary: `register` + `resolve` + `watch --json` round
//! trips on every registry (embedded discovery server, real etcd, the Consul API double,
//! static), `resolve`'s exit codes, a malformed target's error text, `call` through retry, and
//! `demo`.
//!
//! Every child is killed (SIGKILL) when its handle drops; output lines are awaited with
//! deadlines, never with sleeps.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sdkit_testkit::discovery::DiscoveryServer;
use sdkit_testkit::{ConsulDouble, EtcdCluster};
use serde_json::Value;

/// Generous: the machine is shared and loaded.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running `sdkit` with its stdout lines on a channel; killed on drop.
struct Sdkit {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Sdkit {
    fn spawn(args: &[&str]) -> Sdkit {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sdkit"))
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sdkit");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_pipe = child.stderr.take().expect("stderr");
        let (etx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                if etx.send(line).is_err() {
                    break;
                }
            }
        });
        Sdkit {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The next stdout line matching `ok`, within [`DEADLINE`].
    fn wait_line(&mut self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if ok(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "{what}: no such line ({e}); stdout so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "sdkit did not exit in time");
            // Polling a child's exit status: a wait with a deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next stderr line containing `needle`, within [`DEADLINE`].
    fn wait_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no stderr line with {needle:?} ({e})"),
            }
        }
    }

    /// The rest of stderr (the process has exited or is about to).
    fn stderr(&self) -> String {
        let mut text = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(DEADLINE) {
            text.push(line);
        }
        text.join("\n")
    }
}

impl Drop for Sdkit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sdkit args…` to completion: (status, stdout, stderr).
fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let mut sdkit = Sdkit::spawn(args);
    let status = sdkit.wait_exit();
    let mut stdout = Vec::new();
    while let Ok(line) = sdkit.lines.recv_timeout(DEADLINE) {
        stdout.push(line);
    }
    (status, stdout.join("\n"), sdkit.stderr())
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn addrs(doc: &Value) -> Vec<String> {
    doc["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("no instances array: {doc}"))
        .iter()
        .map(|i| i["addr"].as_str().expect("addr").to_owned())
        .collect()
}

fn has_addr(line: &str, addr: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|doc| {
        doc["instances"]
            .as_array()
            .is_some_and(|all| all.iter().any(|i| i["addr"] == addr))
    })
}

/// A free loopback port, for an address nobody listens on.
fn unused_addr() -> String {
    format!("127.0.0.1:{}", sdkit_testkit::free_port())
}

/// `watch --json` sees `register` arrive with its details and leave on SIGTERM; `resolve`
/// agrees at both points.
fn round_trip(url: &str, empty_exit: i32) {
    let addr = unused_addr();
    let mut watch = Sdkit::spawn(&["watch", "--json", url]);
    let mut register = Sdkit::spawn(&[
        "register",
        url,
        "--addr",
        &addr,
        "--id",
        "web-1",
        "--weight",
        "3",
        "--tag",
        "v1",
        "--meta",
        "version=1.2",
        "--ttl",
        "5s",
    ]);
    let line = register.wait_line("registered line", |l| l.starts_with("registered"));
    assert!(line.contains("web-1") && line.contains(&addr), "{line}");
    let line = watch.wait_line("watch shows the instance", |l| has_addr(l, &addr));
    let doc = json(&line);
    assert_eq!(doc["error"], Value::Null, "{line}");
    let sorted = {
        let mut a = addrs(&doc);
        a.sort();
        a
    };
    assert_eq!(addrs(&doc), sorted, "sorted by addr: {line}");
    let mine = doc["instances"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["addr"] == addr.as_str()))
        .expect("mine");
    assert_eq!(mine["weight"], 3, "{line}");
    for key in ["id", "zone", "tags", "metadata"] {
        assert!(mine.get(key).is_some(), "{key} missing: {line}");
    }

    let (status, stdout, stderr) = run(&["resolve", "--json", url]);
    assert_eq!(status.code(), Some(0), "{stdout} {stderr}");
    assert!(has_addr(&stdout, &addr), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");

    register.signal(libc::SIGTERM);
    let status = register.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "register exit: {}",
        register.stderr()
    );
    let line = watch.wait_line("watch shows it gone", |l| {
        serde_json::from_str::<Value>(l).is_ok() && !has_addr(l, &addr)
    });
    assert_eq!(json(&line)["error"], Value::Null, "{line}");

    let (status, stdout, stderr) = run(&["resolve", "--json", url]);
    assert_eq!(status.code(), Some(empty_exit), "{stdout} {stderr}");
    assert!(!has_addr(&stdout, &addr), "{stdout}");

    watch.signal(libc::SIGINT);
    assert_eq!(watch.wait_exit().code(), Some(0), "watch exits 0 on SIGINT");
}

/// A multi-thread runtime that keeps in-process fixtures running while the test thread blocks.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn discovery_round_trip() {
    let rt = runtime();
    let server = rt
        .block_on(DiscoveryServer::start(
            sdkit_discovery_server::Server::builder().env("dev"),
        ))
        .expect("discovery server");
    let url = format!(
        "discovery://{}/demo.web?env=dev&scheme=http&self_discovery=false&hold=2s",
        server.addr()
    );
    round_trip(&url, 2);
}

#[test]
fn etcd_round_trip() {
    let etcd = EtcdCluster::single().expect("etcd");
    let url = format!("etcd://{}/services/web", etcd.client_addr(0));
    round_trip(&url, 2);
}

#[test]
fn consul_round_trip() {
    let rt = runtime();
    let consul = rt.block_on(ConsulDouble::start()).expect("consul double");
    let url = format!("consul://{}/web?wait=2s", consul.addr());
    round_trip(&url, 2);
}

#[test]
fn static_resolve_and_watch() {
    let url = "static://127.0.0.1:9002,127.0.0.1:9001";
    let (status, stdout, _) = run(&["resolve", "--json", url]);
    assert_eq!(status.code(), Some(0));
    let doc = json(&stdout);
    assert_eq!(
        addrs(&doc),
        ["127.0.0.1:9001", "127.0.0.1:9002"],
        "sorted: {stdout}"
    );
    assert_eq!(doc["error"], Value::Null);
    assert_eq!(doc["instances"][0]["weight"], 1);
    assert_eq!(doc["instances"][0]["zone"], Value::Null);
    assert_eq!(doc["instances"][0]["tags"], serde_json::json!([]));
    assert_eq!(doc["instances"][0]["metadata"], serde_json::json!({}));

    let mut watch = Sdkit::spawn(&["watch", "--json", url]);
    let line = watch.wait_line("first set", |_| true);
    assert_eq!(json(&line), doc, "watch prints the same object");
    watch.signal(libc::SIGTERM);
    assert_eq!(watch.wait_exit().code(), Some(0));

    let (status, stdout, _) = run(&["resolve", url]);
    assert_eq!(status.code(), Some(0));
    assert!(stdout.starts_with("2 instances"), "{stdout}");

    let (status, _, stderr) = run(&["register", url, "--addr", "127.0.0.1:1"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("static:// targets cannot register"),
        "{stderr}"
    );
}

#[test]
fn resolve_exit_codes() {
    // 0: instances.
    let (status, ..) = run(&["resolve", "static://127.0.0.1:1"]);
    assert_eq!(status.code(), Some(0));

    // 2: the registry answered, with nobody.
    let rt = runtime();
    let consul = rt.block_on(ConsulDouble::start()).expect("consul double");
    let url = format!("consul://{}/nobody", consul.addr());
    let (status, stdout, stderr) = run(&["resolve", "--json", &url]);
    assert_eq!(status.code(), Some(2), "{stdout} {stderr}");
    assert_eq!(
        json(&stdout),
        serde_json::json!({"instances": [], "error": null})
    );

    // 1: the registry is unreachable (an error snapshot, or no answer in time).
    let url = format!(
        "discovery://{}/demo.web?env=dev&self_discovery=false",
        unused_addr()
    );
    let (status, stdout, stderr) = run(&["resolve", "--json", "--timeout", "3s", &url]);
    assert_eq!(status.code(), Some(1), "{stdout} {stderr}");
    assert!(stderr.contains("sdkit: "), "{stderr}");

    // 1: a usage error (2 is reserved for "resolved to nothing").
    let (status, _, stderr) = run(&["resolve"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let (status, _, stderr) = run(&["resolve", "static://127.0.0.1:1", "--timeout", "soon"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
}

#[test]
fn malformed_targets_name_the_part_and_the_form() {
    let (status, stdout, stderr) = run(&["resolve", "consul://127.0.0.1:8500/web?pasing=true"]);
    assert_eq!(status.code(), Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("invalid target: query: unknown option `pasing`")
            && stderr.contains("passing"),
        "{stderr}"
    );
    let (status, _, stderr) = run(&["watch", "ftp://127.0.0.1/x"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("invalid target: scheme"), "{stderr}");
    let (status, _, stderr) = run(&["register", "etcd://127.0.0.1:2379", "--addr", "127.0.0.1:1"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("invalid target: path") && stderr.contains("expected etcd://"),
        "{stderr}"
    );
    let (status, _, stderr) = run(&["resolve", "consul://127.0.0.1:8500"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("invalid target: path")
            && stderr.contains("expected consul://host:port/service"),
        "{stderr}"
    );
    let (status, _, stderr) = run(&["call", "static://nohost", "/"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("is not host:port"), "{stderr}");
    // --ttl and ttl= together is ambiguous.
    let (status, _, stderr) = run(&[
        "register",
        "etcd://127.0.0.1:2379/s?ttl=5s",
        "--addr",
        "127.0.0.1:1",
        "--ttl",
        "5s",
    ]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("--ttl"), "{stderr}");
}

/// A tiny keep-alive HTTP/1.1 server on its own threads: answers every request `200 ok`.
fn http_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => head.push_str(&line),
                        }
                    }
                    let answer = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn call_spreads_and_retries_past_a_dead_instance() {
    let (a, b) = (http_backend(), http_backend());
    let dead = unused_addr();
    let url = format!("static://{a},{b},{dead}");
    let (status, stdout, stderr) = run(&[
        "call",
        &url,
        "/hello",
        "--requests",
        "90",
        "--concurrency",
        "3",
        "--retries",
        "2",
        "--timeout",
        "2s",
    ]);
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    for addr in [a.to_string(), b.to_string()] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&addr) && l.contains("served"))
            .unwrap_or_else(|| panic!("{addr} missing: {stdout}"));
        assert!(!line.contains(" 0 served"), "{line}");
    }
    assert!(stdout.contains("90 ok, 0 failed"), "{stdout}");
    assert!(
        stdout.contains(&dead) && stdout.contains("failed attempts"),
        "{stdout}"
    );
    assert!(stdout.contains("latency p50"), "{stdout}");

    // Every instance dead: failures, exit 1.
    let url = format!("static://{}", unused_addr());
    let (status, stdout, _) = run(&["call", &url, "/", "-n", "5", "--retries", "1"]);
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("0 ok, 5 failed"), "{stdout}");
}

#[test]
fn call_json_summarises_each_instance_under_any_balancer() {
    let (a, b) = (http_backend(), http_backend());
    let dead = unused_addr();
    let url = format!("static://{a},{b},{dead}");
    for lb in [
        "p2c_peak_ewma",
        "weighted_round_robin",
        "ring_hash",
        r#"{"policy": "random", "seed": 7}"#,
    ] {
        let (status, stdout, stderr) = run(&[
            "call",
            &url,
            "/hello",
            "-n",
            "60",
            "-c",
            "3",
            "--retries",
            "2",
            "--lb",
            lb,
            "--json",
        ]);
        assert_eq!(status.code(), Some(0), "{lb}: {stdout}\n{stderr}");
        let summary: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{lb}: not one JSON object ({e}): {stdout}"));
        assert_eq!(summary["totals"]["ok"], 60, "{lb}: {summary}");
        assert_eq!(summary["totals"]["failed"], 0, "{lb}: {summary}");
        let instances = summary["instances"].as_array().expect("instances");
        let served: u64 = instances
            .iter()
            .map(|i| i["served"].as_u64().unwrap())
            .sum();
        assert_eq!(served, 60, "{lb}: {summary}");
        let dead_entry = instances.iter().find(|i| i["address"] == dead.as_str());
        if let Some(entry) = dead_entry {
            assert_eq!(entry["served"], 0, "{lb}: {summary}");
        }
        assert!(
            summary["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
            "{lb}: {summary}"
        );
    }
    let (status, _, stderr) = run(&["call", &url, "/", "--lb", "least_conn"]);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("unknown balancer"), "{stderr}");
}

#[test]
fn call_with_a_key_sends_every_request_to_the_keys_instance() {
    let (a, b, c) = (http_backend(), http_backend(), http_backend());
    let url = format!("static://{a},{b},{c}");
    let served = |args: &[&str]| -> Vec<u64> {
        let mut argv = vec!["call", &url, "/hello", "-n", "30", "-c", "3", "--json"];
        argv.extend(args);
        let (status, stdout, stderr) = run(&argv);
        assert_eq!(status.code(), Some(0), "{args:?}: {stdout}\n{stderr}");
        let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
        summary["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|i| i["served"].as_u64().unwrap())
            .filter(|&n| n > 0)
            .collect()
    };
    for lb in ["maglev", "ring_hash"] {
        for key in ["user-1", "user-2", "user-3"] {
            assert_eq!(served(&["--lb", lb, "--key", key]), [30], "{lb} {key}");
        }
        // Without a key: a random hash per request, so the requests spread.
        assert!(served(&["--lb", lb]).len() >= 2, "{lb} without a key");
    }
}

#[test]
fn demo_exits_zero_with_no_failed_request() {
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["demo"]);
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("killed backend-2"), "{stdout}");
    assert!(stdout.contains("backend-4"), "{stdout}");
    assert!(stdout.contains("0 failed requests"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no colour without a terminal");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn demo_crash_scene_ejects_the_dead_backend_after_a_handful_of_attempts() {
    let (status, stdout, stderr) = run(&["demo"]);
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("outlier detection ejected backend-2"),
        "{stdout}"
    );
    let hits: u64 = stdout
        .split("more requests: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no crash figure in {stdout}"));
    // Five failures in a row eject it; at most three more attempts were in flight
    // (concurrency 4).
    assert!(
        hits < 10,
        "{hits} attempts reached the dead backend:\n{stdout}"
    );
}

#[test]
fn help_shows_examples_for_every_command() {
    for command in ["watch", "resolve", "register", "call", "demo"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sdkit"))
            .args([command, "--help"])
            .output()
            .expect("run");
        assert!(out.status.success(), "{command}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{command}: {text}");
    }
}

#[test]
fn watch_keeps_the_last_good_set_on_a_source_error() {
    use sdkit_testkit::consul::{Fault, ServiceSpec};
    let rt = runtime();
    let consul = rt.block_on(ConsulDouble::start()).expect("consul double");
    consul.insert_service(
        ServiceSpec::new("web", "web-1")
            .address("127.0.0.1")
            .port(9001)
            .tag("v1")
            .meta("version", "1.2"),
    );
    let url = format!("consul://{}/web?wait=1s", consul.addr());
    let mut watch = Sdkit::spawn(&["watch", "--json", &url]);
    let line = watch.wait_line("the instance", |l| has_addr(l, "127.0.0.1:9001"));
    let doc = json(&line);
    // A Consul instance's id is `<node>/<service ID>` (the double's agent node is `node-1`).
    assert_eq!(doc["instances"][0]["id"], "node-1/web-1", "{line}");
    assert_eq!(
        doc["instances"][0]["tags"],
        serde_json::json!(["v1"]),
        "{line}"
    );
    assert_eq!(doc["instances"][0]["metadata"]["version"], "1.2", "{line}");

    consul.inject("/v1/health", Fault::Status(500));
    let line = watch.wait_line("an error line", |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|d| d["error"].is_string())
    });
    assert!(
        has_addr(&line, "127.0.0.1:9001"),
        "last good set kept: {line}"
    );
    assert!(line.contains("500"), "the error says what happened: {line}");

    consul.clear_faults();
    let line = watch.wait_line("recovered", |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|d| d["error"].is_null())
    });
    assert!(has_addr(&line, "127.0.0.1:9001"), "{line}");
    watch.signal(libc::SIGTERM);
    assert_eq!(watch.wait_exit().code(), Some(0));
}

#[test]
fn register_interrupted_before_the_registry_answers_exits_1() {
    let url = format!("etcd://{}/services/web", unused_addr());
    let mut register = Sdkit::spawn(&["register", &url, "--addr", "127.0.0.1:1"]);
    // The warning proves the command is running (signal handlers installed) and retrying.
    register.wait_stderr("register failed; retrying");
    register.signal(libc::SIGINT);
    assert_eq!(register.wait_exit().code(), Some(1));
    let stderr = register.stderr();
    assert!(
        stderr.contains("SIGINT before etcd://") && stderr.contains("accepted the registration"),
        "{stderr}"
    );
}

/// Issue #15: whatever a password or token contains, no output line of any command shows it —
/// with `--json` or not, on stdout or stderr. Raw user info needing percent-encoding is refused
/// with the redacted form; encoded user info and query tokens reach the backend and stay hidden.
#[test]
fn secrets_in_targets_never_reach_any_output() {
    let raw = "Pw/d?x@y#z%q w";
    let pieces = ["Pw/d", "Pw", "d?x", "x@y", "y#z", "z%q", "q w"];
    let encoded = "S3cr%2Ft%3F%40%23%25%20x";
    let targets = [
        format!("etcd://root:{raw}@127.0.0.1:1/svc"),
        format!("consul://{raw}@127.0.0.1:1/web"),
        format!("etcd://root:{encoded}@{}/svc", unused_addr()),
        format!("consul://{}/web?token=T0kenS3cret", unused_addr()),
        format!(
            "etcd://{}/svc?user=root&password=T0kenS3cret",
            unused_addr()
        ),
    ];
    for target in &targets {
        for json in [false, true] {
            let mut args = vec!["resolve", "--timeout", "1s"];
            if json {
                args.push("--json");
            }
            args.push(target);
            let (status, stdout, stderr) = run(&args);
            assert_ne!(status.code(), Some(0), "{target}: {stdout} {stderr}");
            let all = format!("{stdout}\n{stderr}");
            for secret in pieces.iter().chain(&["S3cr", "T0kenS3cret"]) {
                assert!(
                    !all.contains(secret),
                    "{target} (json {json}) shows {secret}: {all}"
                );
            }
        }
    }
    // The refusal says why and shows the redacted form.
    let (_, _, stderr) = run(&["resolve", &targets[0]]);
    assert!(
        stderr.contains("percent-encoded") && stderr.contains("etcd://***@"),
        "{stderr}"
    );
}
