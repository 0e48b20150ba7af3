//! `sdkit serve --metrics-listen`: a real Prometheus scrapes the registry's `/metrics` and
//! its HTTP API returns the series with the right values; `promtool check metrics` passes on
//! the exposition; the metrics port is off by default; labels never carry client strings.

use sdkit_testkit::prometheus::{self, Prometheus};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// A running `sdkit serve` and the lines it printed on stdout.
struct Serve {
    child: Child,
    api: SocketAddr,
    metrics: Option<SocketAddr>,
    stdout: mpsc::Receiver<String>,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sdkit"))
            .args(["serve", "--listen", "127.0.0.1:0", "--hold", "30s"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sdkit");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut next = |prefix: &str| -> SocketAddr {
            let line = rx.recv_timeout(DEADLINE).unwrap_or_else(|e| {
                let _ = child.kill();
                panic!("no {prefix:?} line: {e}")
            });
            line.strip_prefix(prefix)
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        };
        let api = next("listening on ");
        let metrics = args
            .contains(&"--metrics-listen")
            .then(|| next("metrics on "));
        Serve {
            child,
            api,
            metrics,
            stdout: rx,
        }
    }

    /// Sends a raw request to the API and returns the whole answer.
    fn request(&self, head_and_body: &str) -> String {
        let mut conn = TcpStream::connect(self.api).expect("connect");
        conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
        conn.write_all(head_and_body.as_bytes()).expect("write");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("read");
        answer
    }

    fn register(&self, appid: &str, hostname: &str) -> String {
        let body = format!(
            "zone=z&env=dev&appid={}&hostname={}&status=1&addrs=http://127.0.0.1:1",
            encode(appid),
            encode(hostname)
        );
        self.request(&format!(
            "POST /discovery/register HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    /// TCP sockets of the process in state LISTEN.
    fn listening_sockets(&self) -> usize {
        let pid = self.child.id();
        let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd dir")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| {
                let l = l.to_string_lossy().into_owned();
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect();
        ["tcp", "tcp6"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok())
            .flat_map(|t| t.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.get(3) == Some(&"0A") && cols.get(9).is_some_and(|i| inodes.contains(*i))
            })
            .count()
    }

    /// SIGTERM, then the exit status and every further stdout line.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        // SAFETY: plain kill(2) on the child's pid, which we own and have not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill");
        let mut status = None;
        assert!(
            sdkit_testkit::wait_until(DEADLINE, || {
                status = self.child.try_wait().expect("wait");
                status.is_some()
            }),
            "sdkit serve did not stop after SIGTERM"
        );
        let lines = self.stdout.try_iter().collect();
        (status.expect("exited"), lines)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes every byte but ASCII alphanumerics (form values).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The exposition from the metrics listener.
fn scrape(serve: &Serve) -> String {
    prometheus::get(serve.metrics.expect("metrics listener"), "/metrics").expect("GET /metrics")
}

#[test]
fn prometheus_scrapes_the_registry() {
    let serve = Serve::start(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics = serve.metrics.expect("metrics address");
    assert_eq!(serve.listening_sockets(), 2, "API and metrics listeners");
    let prom = Prometheus::scraping(&[metrics]).expect("prometheus");

    // The server's own instance, then two more in a second app.
    for host in ["h1", "h2"] {
        let answer = serve.register("a.app", host);
        assert!(answer.contains(r#""code":0"#), "{answer}");
    }
    // A `polls` on an app nobody registered parks (cursor 0) until shutdown.
    let api = serve.api;
    let poller = std::thread::spawn(move || {
        let mut conn = TcpStream::connect(api).expect("connect");
        conn.set_read_timeout(Some(DEADLINE * 2)).expect("timeout");
        conn.write_all(
            b"GET /discovery/polls?env=dev&appid=no.app&latest_timestamp=0&hostname=t HTTP/1.1\r\n\
              Host: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer
    });

    let wait = |q: &str, want: f64| {
        prom.wait_for_value(q, DEADLINE, |v| v == want)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    wait(r#"up{job="sdkit"}"#, 1.0);
    wait("sdkit_discovery_instances", 3.0);
    wait("sdkit_discovery_apps", 2.0);
    wait("sdkit_discovery_parked_polls", 1.0);
    wait(
        r#"sdkit_discovery_requests_total{route="/discovery/register",code="200",status="0"}"#,
        2.0,
    );
    wait("sdkit_discovery_self_preservation", 0.0);
    wait("sdkit_discovery_evictions_total", 0.0);
    wait("sdkit_discovery_refused_connections_total", 0.0);
    wait("sdkit_discovery_connections >= bool 1", 1.0);
    wait("process_resident_memory_bytes > bool 1e6", 1.0);
    wait("process_open_fds >= bool 3", 1.0);
    wait("process_max_fds > bool 0", 1.0);
    wait("process_cpu_seconds_total >= bool 0", 1.0);
    wait("process_start_time_seconds > bool (time() - 3600)", 1.0);

    // A cancel shows in the instance count and the request counter.
    let body = "zone=z&env=dev&appid=a.app&hostname=h2";
    let answer = serve.request(&format!(
        "POST /discovery/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(answer.contains(r#""code":0"#), "{answer}");
    wait("sdkit_discovery_instances", 2.0);
    wait(
        r#"sdkit_discovery_requests_total{route="/discovery/cancel",code="200",status="0"}"#,
        1.0,
    );

    let text = scrape(&serve);
    prometheus::check_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let (status, _) = serve.stop();
    assert!(status.success(), "exit status {status:?}");
    let answer = poller.join().expect("poller");
    assert!(
        answer.contains("-304"),
        "parked poll answered on shutdown: {answer}"
    );
}

#[test]
fn the_metrics_port_is_off_by_default() {
    let serve = Serve::start(&[]);
    assert_eq!(serve.listening_sockets(), 1, "only the API listener");
    let answer =
        serve.request("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let (status, lines) = serve.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        lines.iter().all(|l| !l.contains("metrics")),
        "no metrics line: {lines:?}"
    );
}

#[test]
fn labels_never_carry_client_strings() {
    let serve = Serve::start(&["--metrics-listen", "127.0.0.1:0"]);
    let odd = "x\"} evil{route=\"\\\nZQ";
    // Whatever the server answers (it may refuse the appid), the strings stay out of labels.
    serve.register(odd, "hostZQ");
    serve.register("ok.appZQ", odd);
    serve.request(&format!(
        "GET /discovery/fetch?env=dev&appid={}&status=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Connection: close\r\n\r\n",
        encode(odd)
    ));
    serve.request("GET /ZQ%22evil HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    serve.request("PUT /discovery/fetch HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");

    let text = scrape(&serve);
    assert!(
        !text.contains("ZQ"),
        "a client string reached the exposition:\n{text}"
    );
    assert!(!text.contains("evil"), "{text}");
    let routes: BTreeSet<&str> = [
        "/discovery/register",
        "/discovery/renew",
        "/discovery/cancel",
        "/discovery/set",
        "/discovery/fetch",
        "/discovery/fetchs",
        "/discovery/fetch/all",
        "/discovery/poll",
        "/discovery/polls",
        "/discovery/nodes",
        "ui",
        "other",
    ]
    .into();
    let mut seen = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.split_once('}').expect("closing brace").0;
        for pair in labels.split(',') {
            let (key, value) = pair.split_once('=').expect("key=value");
            let value = value.trim_matches('"');
            match key {
                "route" => assert!(routes.contains(value), "route {value:?}"),
                "code" | "status" => assert!(
                    value == "other" || value == "none" || value.parse::<i32>().is_ok(),
                    "{key} {value:?}"
                ),
                other => panic!("unexpected label {other}"),
            }
            seen.insert(format!("{key}={value}"));
        }
    }
    for expected in [
        "route=other",
        "code=404",
        "code=405",
        "route=/discovery/fetch",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} missing from {seen:?}\n{text}"
        );
    }
    prometheus::check_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}
