//! A real server on 127.0.0.1:0 and a small HTTP client for the tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sdkit_discovery_server::{Builder, Handle, ServeError, Server};
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The loopback address, as a configured peer in tests of replication fields.
pub const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Generous bound for "eventually" on a loaded machine.
pub const EVENTUALLY: Duration = Duration::from_secs(20);

/// The server env and zone most tests use (the reference tests' values).
pub const ENV: &str = "pre";
pub const ZONE: &str = "sh0001";
pub const APP: &str = "main.arch.test";

/// A builder with the tests' identity and a long hold (wake-ups must come from changes).
pub fn builder() -> Builder {
    Server::builder()
        .env(ENV)
        .zone(ZONE)
        .hold(Duration::from_secs(20))
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: Handle,
    join: JoinHandle<Result<(), ServeError>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TestServer {
    pub async fn start(builder: Builder) -> TestServer {
        let server = builder.build().expect("valid config");
        let handle = server.handle();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let join = tokio::spawn(server.serve(listener));
        let client = Client::builder(TokioExecutor::new()).build_http();
        TestServer {
            addr,
            handle,
            join,
            client,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path_and_query));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let resp = self.client.request(req).await.expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// GET, expecting HTTP 200 and JSON.
    pub async fn get(&self, path_and_query: &str) -> Value {
        let a = self
            .request(Method::GET, path_and_query, None, "", &[])
            .await;
        assert_eq!(a.status, 200, "GET {path_and_query}: {}", a.text());
        a.json()
    }

    /// POST an urlencoded body, expecting HTTP 200 and JSON.
    pub async fn post(&self, path: &str, form: &str) -> Value {
        let a = self
            .request(
                Method::POST,
                path,
                Some("application/x-www-form-urlencoded"),
                form,
                &[],
            )
            .await;
        assert_eq!(a.status, 200, "POST {path} {form}: {}", a.text());
        a.json()
    }

    /// Registers `host` of `appid` in the tests' env/zone; asserts code 0.
    pub async fn register(&self, appid: &str, zone: &str, host: &str) {
        let v = self
            .post(
                "/discovery/register",
                &format!("zone={zone}&env={ENV}&appid={appid}&hostname={host}&status=1&addrs=grpc://127.0.0.1:8080&region=sh"),
            )
            .await;
        assert_eq!(v["code"], 0, "register: {v}");
    }

    /// The current cursor of `appid` in the tests' env.
    pub async fn cursor(&self, appid: &str) -> i64 {
        let v = self
            .get(&format!(
                "/discovery/fetch?env={ENV}&appid={appid}&status=3"
            ))
            .await;
        v["data"]["latest_timestamp"].as_i64().expect("cursor")
    }

    /// Waits until `n` polls are parked.
    pub async fn parked(&self, n: usize) {
        let handle = self.handle.clone();
        eventually(&format!("{n} parked polls"), move || {
            let h = handle.clone();
            async move { h.stats().parked_polls == n }
        })
        .await;
    }

    /// Shuts down and checks a clean exit.
    pub async fn stop(self) {
        self.handle.shutdown();
        let result = tokio::time::timeout(EVENTUALLY, self.join)
            .await
            .expect("stops in time");
        result.expect("task").expect("serve returned Ok");
    }
}

/// Polls `cond` every few milliseconds until it holds or [`EVENTUALLY`] passes.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + EVENTUALLY;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Hostnames of `zone` in an InstanceInfo, sorted.
pub fn hosts(info: &Value, zone: &str) -> Vec<String> {
    let mut v: Vec<String> = info["instances"][zone]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["hostname"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Percent-encodes everything but ASCII letters, digits, `-`, `_` and `.`.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Registers `count` instances (hostnames `h<i>`, appid `appid(i)`) with ~3 KB of metadata
/// each, so `fetch/all` answers are large.
pub async fn preload(s: &TestServer, appid: impl Fn(usize) -> String, count: usize) {
    let meta = urlencode(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(3000)));
    for i in 0..count {
        let form = format!(
            "zone={ZONE}&env={ENV}&appid={}&hostname=h{i}&status=1&addrs=http://a:1&metadata={meta}",
            appid(i)
        );
        assert_eq!(s.post("/discovery/register", &form).await["code"], 0);
    }
}
