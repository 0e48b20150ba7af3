//! An in-process Eureka server double: a real HTTP/1.1 server on a free loopback port that
//! follows Eureka's REST operations (the "Eureka REST operations" page of the Netflix wiki,
//! JSON flavour, base path `/eureka`) for the parts sdkit uses. Its JSON is written by hand
//! here and shares no types with `sdkit-eureka`, so a shape mistake in the client cannot hide
//! in both.
//!
//! Modelled:
//!
//! * `POST /eureka/apps/{APP}` with `{"instance": {…}}` (`Content-Type: application/json`):
//!   204; 400 when `hostName`, `ipAddr` or `dataCenterInfo.name` is missing, or `app` does not
//!   match the path; 415 for another content type;
//! * `PUT /eureka/apps/{APP}/{ID}` (heartbeat): 200, 404 for an unknown instance;
//! * `PUT /eureka/apps/{APP}/{ID}/status?value=S`: an overridden status;
//! * `DELETE /eureka/apps/{APP}/{ID}`: 200, 404 when unknown;
//! * `GET /eureka/apps`, `GET /eureka/apps/{APP}` (404 without instances),
//!   `GET /eureka/apps/{APP}/{ID}`, `GET /eureka/apps/delta` (the changes of the last
//!   3 minutes, with `actionType` `ADDED` / `MODIFIED` / `DELETED`); a GET without
//!   `Accept: application/json` gets XML, as Eureka's default;
//! * leases: an instance not renewed within its `leaseInfo.durationInSecs` (else the double's
//!   default, 90 s; shorten it with [`EurekaDouble::start_with_lease`]) is evicted;
//! * HTTP basic auth when [`EurekaDouble::with_basic_auth`] is set (401 otherwise);
//! * fault injection: the next N requests answer a status, malformed bodies, hanging requests,
//!   an instance forgotten behind the client's back, single-instance answers as an object
//!   rather than an array (older servers).
//!
//! Not modelled: XML bodies beyond a stub, VIP queries, peer replication, self-preservation.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::eureka_registry::{
    State, application, apps_hashcode, evict, now_ms, record, register, render, set_status,
};

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    default_lease: Duration,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The Eureka double. See the [module docs](self). Dropping it stops the server.
#[derive(Debug)]
pub struct EurekaDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for EurekaDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EurekaDouble {
    /// Starts the double with Eureka's default lease (90 s).
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with_lease(Duration::from_secs(90)).await
    }

    /// Starts the double with `lease` for instances that announce no `durationInSecs`.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start_with_lease(lease: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            default_lease: lease,
        });
        let server = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&server);
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(EurekaDouble { addr, shared, task })
    }

    /// The address (`host:port`); the base URL is `http://{addr}/eureka`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requires HTTP basic credentials `user:password` on every request.
    pub fn with_basic_auth(self, user: &str, password: &str) -> Self {
        self.shared.lock().basic_auth = Some(format!("{user}:{password}"));
        self
    }

    /// The next `n` requests answer `status` (with a short text body).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared
            .lock()
            .fail_next
            .extend(std::iter::repeat_n(status, n));
    }

    /// While on, every GET answers 200 with a body that is not JSON.
    pub fn set_malformed(&self, on: bool) {
        self.shared.lock().malformed = on;
    }

    /// While on, every request hangs (until the client gives up).
    pub fn set_hang(&self, on: bool) {
        self.shared.lock().hang = on;
    }

    /// While on, an application with one instance answers it as an object, not an array.
    pub fn set_single_instance_as_object(&self, on: bool) {
        self.shared.lock().single_as_object = on;
    }

    /// Forgets an instance without recording a change (the server lost it: its heartbeats get
    /// 404 from now on).
    pub fn forget(&self, app: &str, id: &str) -> bool {
        let mut state = self.shared.lock();
        state
            .apps
            .get_mut(&app.to_ascii_uppercase())
            .and_then(|a| a.remove(id))
            .is_some()
    }

    /// Registers an instance directly (as if another client had), with `status` and `port`.
    pub fn insert(&self, app: &str, id: &str, ip: &str, port: u16, status: &str) {
        let app = app.to_ascii_uppercase();
        let posted = json!({
            "instanceId": id, "hostName": ip, "app": app, "ipAddr": ip,
            "status": status, "port": {"$": port, "@enabled": "true"},
            "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
        });
        let mut state = self.shared.lock();
        register(&mut state, self.shared.default_lease, &app, posted);
    }

    /// Sets an instance's status (an override, as `PUT …/status?value=` does).
    pub fn set_status(&self, app: &str, id: &str, status: &str) -> bool {
        let mut state = self.shared.lock();
        set_status(&mut state, &app.to_ascii_uppercase(), id, status)
    }

    /// The registered instances of `app`: id → status (after evicting expired leases).
    pub fn instances(&self, app: &str) -> BTreeMap<String, String> {
        let mut state = self.shared.lock();
        evict(&mut state);
        state
            .apps
            .get(&app.to_ascii_uppercase())
            .map(|a| {
                a.iter()
                    .map(|(id, l)| (id.clone(), l.status.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The registration body of an instance, as posted.
    pub fn posted(&self, app: &str, id: &str) -> Option<Value> {
        let state = self.shared.lock();
        Some(
            state
                .apps
                .get(&app.to_ascii_uppercase())?
                .get(id)?
                .posted
                .clone(),
        )
    }

    /// Heartbeats received for an instance since its last registration.
    pub fn heartbeats(&self, app: &str, id: &str) -> u64 {
        let state = self.shared.lock();
        state
            .apps
            .get(&app.to_ascii_uppercase())
            .and_then(|a| a.get(id))
            .map_or(0, |l| l.heartbeats)
    }

    /// Registrations (`POST`s accepted) so far.
    pub fn registrations(&self) -> u64 {
        self.shared.lock().registrations
    }

    /// Requests so far whose `METHOD path` starts with `prefix` (e.g. `"GET /eureka/apps/WEB"`).
    pub fn requests(&self, prefix: &str) -> u64 {
        let state = self.shared.lock();
        state
            .requests
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

type Resp = Response<Full<Bytes>>;

/// The `{"applications": …}` document of `GET /apps` and `GET /apps/delta`.
fn applications(state: &State, apps: Vec<Value>) -> Resp {
    let doc = json!({"applications": {
        "versions__delta": state.version.to_string(),
        "apps__hashcode": apps_hashcode(state),
        "application": apps
    }});
    respond(StatusCode::OK, "application/json", doc.to_string())
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn empty(status: StatusCode) -> Resp {
    respond(status, "text/plain", Bytes::new())
}

fn basic_credentials(req: &Request<Incoming>) -> Option<String> {
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = header.strip_prefix("Basic ")?;
    decode_base64(encoded.trim()).and_then(|b| String::from_utf8(b).ok())
}

fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = input.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let produced = chunk.len().saturating_sub(1);
        for i in 0..produced {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let wants_json = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let json_body = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let credentials = basic_credentials(&req);
    let (hang, fault) = {
        let mut state = shared.lock();
        *state
            .requests
            .entry(format!("{method} {path}"))
            .or_default() += 1;
        (state.hang, state.fail_next.pop_front())
    };
    if hang {
        std::future::pending::<()>().await;
    }
    if let Some(status) = fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return respond(status, "text/plain", "injected fault");
    }
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return empty(StatusCode::BAD_REQUEST),
    };
    let mut state = shared.lock();
    if let Some(expected) = &state.basic_auth
        && credentials.as_deref() != Some(expected.as_str())
    {
        return empty(StatusCode::UNAUTHORIZED);
    }
    evict(&mut state);
    let Some(rest) = path.strip_prefix("/eureka/apps") else {
        return empty(StatusCode::NOT_FOUND);
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if method == hyper::Method::GET {
        if !wants_json {
            return respond(StatusCode::OK, "application/xml", "<applications/>");
        }
        if state.malformed {
            return respond(
                StatusCode::OK,
                "application/json",
                "{\"application\": [truncated",
            );
        }
    }
    match (method.as_str(), segments.as_slice()) {
        ("GET", []) => {
            let apps: Vec<Value> = state
                .apps
                .keys()
                .filter_map(|app| application(&state, app))
                .collect();
            applications(&state, apps)
        }
        ("GET", ["delta"]) => {
            let mut by_app: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
            for change in &state.changes {
                by_app
                    .entry(&change.app)
                    .or_default()
                    .push(change.instance.clone());
            }
            let apps: Vec<Value> = by_app
                .into_iter()
                .map(|(name, instances)| json!({"name": name, "instance": instances}))
                .collect();
            applications(&state, apps)
        }
        ("GET", [app]) => match application(&state, &app.to_ascii_uppercase()) {
            Some(application) => respond(
                StatusCode::OK,
                "application/json",
                json!({"application": application}).to_string(),
            ),
            None => empty(StatusCode::NOT_FOUND),
        },
        ("GET", [app, id]) => {
            let app = app.to_ascii_uppercase();
            match state.apps.get(&app).and_then(|a| a.get(*id)) {
                Some(lease) => respond(
                    StatusCode::OK,
                    "application/json",
                    json!({"instance": render(&app, id, lease, None)}).to_string(),
                ),
                None => empty(StatusCode::NOT_FOUND),
            }
        }
        ("POST", [app]) => {
            if !json_body {
                return empty(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            let app = app.to_ascii_uppercase();
            let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
                return respond(StatusCode::BAD_REQUEST, "text/plain", "malformed JSON");
            };
            let Some(instance) = doc.get("instance").filter(|i| i.is_object()) else {
                return respond(StatusCode::BAD_REQUEST, "text/plain", "missing instance");
            };
            let has = |pointer: &str| {
                instance
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            };
            if !has("/hostName") || !has("/ipAddr") || !has("/dataCenterInfo/name") {
                return respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "missing hostName, ipAddr or dataCenterInfo",
                );
            }
            let named = instance
                .get("app")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !named.eq_ignore_ascii_case(&app) {
                return respond(StatusCode::BAD_REQUEST, "text/plain", "Mismatched appName");
            }
            register(&mut state, shared.default_lease, &app, instance.clone());
            empty(StatusCode::NO_CONTENT)
        }
        ("PUT", [app, id]) => {
            let app = app.to_ascii_uppercase();
            match state.apps.get_mut(&app).and_then(|a| a.get_mut(*id)) {
                Some(lease) => {
                    lease.renewed = Instant::now();
                    lease.renewed_ms = now_ms();
                    lease.heartbeats += 1;
                    empty(StatusCode::OK)
                }
                None => empty(StatusCode::NOT_FOUND),
            }
        }
        ("PUT", [app, id, "status"]) => {
            let value = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("value="))
                .unwrap_or("UP");
            if set_status(&mut state, &app.to_ascii_uppercase(), id, value) {
                empty(StatusCode::OK)
            } else {
                empty(StatusCode::NOT_FOUND)
            }
        }
        ("DELETE", [app, id]) => {
            let app = app.to_ascii_uppercase();
            let removed = state.apps.get_mut(&app).and_then(|a| a.remove(*id));
            match removed {
                Some(lease) => {
                    record(&mut state, "DELETED", &app, id, &lease);
                    state.apps.retain(|_, leases| !leases.is_empty());
                    empty(StatusCode::OK)
                }
                None => empty(StatusCode::NOT_FOUND),
            }
        }
        _ => empty(StatusCode::METHOD_NOT_ALLOWED),
    }
}
