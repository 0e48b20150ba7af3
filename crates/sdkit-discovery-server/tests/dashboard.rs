//! The `/ui` dashboard in a real headless Chromium, driven over the DevTools protocol (a small
//! WebSocket client below, no browser tooling): the page lists a registered instance, shows a
//! newly registered one and drops a cancelled one without reloading, and shows markup sent in
//! metadata and hostnames as text without running it.
//!
//! Needs `chromium` (xtask's tool table); set `SDKIT_DASHBOARD_PNG=path` to save a screenshot.

#[allow(dead_code)]
#[path = "http/common.rs"]
mod common;

use common::{APP, ENV, EVENTUALLY, TestServer, ZONE, builder, urlencode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// A headless Chromium with its own profile directory, killed (and the directory removed) on
/// drop.
struct Browser {
    _child: Child,
    profile: PathBuf,
    port: u16,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    async fn open(url: &str) -> Browser {
        let profile =
            std::env::temp_dir().join(format!("sdkit-ui-{}-{}", std::process::id(), nonce()));
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1100,700",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium is installed (cargo xtask tools)");
        let port = wait_for_port(&profile.join("DevToolsActivePort")).await;
        Browser {
            _child: child,
            profile,
            port,
        }
    }

    /// The DevTools WebSocket of the page showing `url`.
    async fn page(&self, url: &str) -> Page {
        let deadline = Instant::now() + EVENTUALLY;
        loop {
            let list = http_get(self.port, "/json/list").await;
            let targets: Value = serde_json::from_str(&list).unwrap_or(Value::Null);
            let found = targets.as_array().and_then(|ts| {
                ts.iter().find(|t| {
                    t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
                })
            });
            if let Some(ws) = found.and_then(|t| t["webSocketDebuggerUrl"].as_str()) {
                return tokio::time::timeout(EVENTUALLY, Page::connect(ws))
                    .await
                    .unwrap_or_else(|_| panic!("no WebSocket upgrade from {ws}"));
            }
            assert!(Instant::now() < deadline, "no page for {url}: {list}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A value that differs between calls (profile names, frame masks).
fn nonce() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    t ^ COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed)
}

async fn wait_for_port(file: &Path) -> u16 {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "chromium wrote no DevToolsActivePort"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn http_get(port: u16, path: &str) -> String {
    tokio::time::timeout(Duration::from_secs(5), http_get_once(port, path))
        .await
        .unwrap_or_default()
}

async fn http_get_once(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // The DevTools HTTP server keeps the connection open: read by Content-Length.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = s.read(&mut buf).await else {
            return String::new();
        };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if len.is_some_and(|len| body.len() >= len) {
                return body.to_owned();
            }
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// One DevTools session over a WebSocket (RFC 6455: masked client frames, text messages).
struct Page {
    stream: TcpStream,
    next_id: u64,
}

impl Page {
    async fn connect(ws_url: &str) -> Page {
        let rest = ws_url.strip_prefix("ws://").expect("ws url");
        let (host, path) = rest.split_once('/').expect("ws path");
        let mut stream = TcpStream::connect(host).await.unwrap();
        let req = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            stream.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        Page { stream, next_id: 1 }
    }

    async fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = nonce().to_le_bytes();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next complete text message (continuation frames joined; control frames skipped).
    async fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.stream.read_exact(&mut h).await.unwrap();
            let fin = h[0] & 0x80 != 0;
            let opcode = h[0] & 0x0f;
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.stream.read_exact(&mut b).await.unwrap();
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.stream.read_exact(&mut b).await.unwrap();
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).unwrap()];
            self.stream.read_exact(&mut payload).await.unwrap();
            if opcode >= 0x8 {
                continue; // ping/pong/close: not used by DevTools here
            }
            message.extend_from_slice(&payload);
            if fin {
                return String::from_utf8(message).unwrap();
            }
        }
    }

    /// Calls a DevTools method and returns its `result`.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        tokio::time::timeout(EVENTUALLY, self.call_once(method, params.clone()))
            .await
            .unwrap_or_else(|_| panic!("{method} {params}: no answer"))
    }

    async fn call_once(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.send(&msg).await;
        loop {
            let reply: Value = serde_json::from_str(&self.receive().await).unwrap();
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        assert!(r["exceptionDetails"].is_null(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is `true` in the page.
    async fn until(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + EVENTUALLY;
        while self.eval(expression).await != Value::Bool(true) {
            let shown = self.eval(HOSTS).await;
            assert!(Instant::now() < deadline, "{what}: page shows {shown}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const HOSTS: &str = "[...document.querySelectorAll('tr.instance')].map(t => t.dataset.hostname)";

fn shows(host: &str) -> String {
    format!("{HOSTS}.includes({})", json!(host))
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, v)| n | (u32::from(*v) << (18 - 6 * i)));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.into_iter().take(c.len() - 1)
        })
        .collect()
}

async fn register(s: &TestServer, appid: &str, host: &str, metadata: &str) {
    let form = format!(
        "zone={ZONE}&env={ENV}&appid={appid}&hostname={}&status=1&addrs={}&region=sh&version=v1&metadata={}",
        urlencode(host),
        urlencode("grpc://127.0.0.1:8080"),
        urlencode(metadata),
    );
    let v = s.post("/discovery/register", &form).await;
    assert_eq!(v["code"], 0, "register: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_follows_the_registry_live_and_renders_text_only() {
    let s = TestServer::start(builder()).await;
    register(&s, APP, "alpha", r#"{"color":"blue"}"#).await;
    let url = format!("http://{}/ui", s.addr);
    let browser = Browser::open(&url).await;
    let mut page = browser.page(&url).await;

    page.until("registered instance listed", &shows("alpha"))
        .await;
    assert_eq!(page.eval("document.title").await, "sdkit discovery");
    // A marker a reload would wipe.
    page.eval("window.__sameDocument = 42").await;

    register(&s, APP, "beta", "").await;
    page.until("new instance shown", &shows("beta")).await;
    register(&s, "other.app", "gamma", "").await;
    page.until("instance of a new app shown", &shows("gamma"))
        .await;

    let cancel = format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=alpha");
    assert_eq!(s.post("/discovery/cancel", &cancel).await["code"], 0);
    page.until(
        "cancelled instance dropped",
        &format!("!{}", shows("alpha")),
    )
    .await;
    assert_eq!(page.eval("window.__sameDocument").await, 42, "no reload");

    // Markup in hostname and metadata: shown as text, never run.
    let evil_host = "<img src=x onerror=window.__pwned=1>";
    let evil_meta =
        r#"{"note":"<script>window.__pwned=2</script><img src=y onerror=window.__pwned=3>"}"#;
    register(&s, APP, evil_host, evil_meta).await;
    page.until("markup hostname shown", &shows(evil_host)).await;
    let text = page
        .eval("document.getElementById('envs').textContent")
        .await;
    let text = text.as_str().unwrap();
    assert!(text.contains(evil_host), "{text}");
    assert!(text.contains("<script>window.__pwned=2</script>"), "{text}");
    assert_eq!(
        page.eval("document.querySelectorAll('#envs img, #envs script').length")
            .await,
        0
    );
    assert_eq!(page.eval("typeof window.__pwned").await, "undefined");
    assert_eq!(page.eval("window.__sameDocument").await, 42, "no reload");

    if let Ok(path) = std::env::var("SDKIT_DASHBOARD_PNG") {
        let shot = page
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = decode_base64(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(path, png).unwrap();
    }
    drop(page);
    drop(browser);
    s.stop().await;
}
