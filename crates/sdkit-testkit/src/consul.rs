//! A Consul HTTP API double: a real HTTP/1.1 server on a free loopback port, in-process.
//!
//! No Consul agent can be installed on the machines sdkit is tested on, so the Consul backend is
//! tested against this double. It follows the behaviour documented in Consul's HTTP API reference
//! (the `v1` API as served by Consul 1.10 – 1.20), for exactly the parts sdkit uses. Its JSON is
//! written here by hand from that documentation — it deliberately shares no types with the
//! client in `sdkit-consul`, so a shape mistake in the client cannot hide in both.
//!
//! ## What it models
//!
//! * `GET /v1/health/service/:name` with `passing`, `dc`, `stale`, `filter`, `tag` (repeatable,
//!   AND) and **blocking queries**: every answer carries `X-Consul-Index`; a request with
//!   `index=N` (N > 0) hangs until the service's modify index exceeds N or `wait` passes
//!   (default 5 min, capped at 10 min, plus a random extra of up to `wait/16`), then answers with
//!   the current state — a return is not proof of change. Entries have Consul's shape:
//!   `{Node{ID, Node, Address, Datacenter, TaggedAddresses, Meta, …}, Service{ID, Service, Tags,
//!   Address, Meta, Port, Weights{Passing, Warning}, …}, Checks[{Node, CheckID, Name, Status,
//!   ServiceID, ServiceName, …}]}`; empty tags and meta are `null`, as Go encodes nil slices and
//!   maps. Every node carries a passing `serfHealth` check. `passing` drops entries with any
//!   check not passing. Unknown datacenters answer 500 `No path to datacenter`.
//! * The `filter` language (go-bexpr) for the forms clients use: `==`, `!=`, `contains`,
//!   `not contains`, `in`, `not in`, `is empty`, `is not empty`, `and`, `or`, `not`, parentheses,
//!   selectors such as `Service.Tags`, `Service.Meta.zone`, `Node.Datacenter`; values in double
//!   quotes (with `\"` and `\\` escapes) or backticks. A filter it cannot parse answers 400, as
//!   Consul does.
//! * `PUT /v1/agent/service/register` (`replace-existing-checks`) with one `Check` (TTL, HTTP or
//!   TCP) or `Checks`; `PUT /v1/agent/service/deregister/:id` (404 for an unknown service);
//!   `GET /v1/agent/service/:id`; `PUT /v1/agent/check/{pass,warn,fail}/:id` (404 `Unknown check
//!   ID` for an unknown check, 500 for a check without a TTL).
//! * TTL checks start in the registration's `Status` (default `critical`, as in Consul), turn
//!   critical when the TTL lapses without a heartbeat, and a service whose check stays critical
//!   for `DeregisterCriticalServiceAfter` is deregistered. Unlike Consul (minimum 1 min, reaped
//!   every 30 s) the double honours any duration and reaps every 10 ms, so tests stay short.
//!   HTTP and TCP checks are stored but never probed: tests set their status with
//!   [`ConsulDouble::set_check_status`].
//! * ACLs: with [`ConsulDouble::enable_acl`], a request without the token (header
//!   `X-Consul-Token`, or the deprecated `?token=`) answers 403 `ACL not found`.
//! * Fault injection ([`Fault`]): HTTP 500 / 429 / 503, hanging responses, malformed JSON, an
//!   `X-Consul-Index` of 0 that never blocks (the bug behind go-kit #1214), and an index that
//!   goes backwards ([`ConsulDouble::rewind_index`], as after a snapshot restore).
//! * Every request is recorded (method, path, query parameters, headers) and counted.
//! * TLS with a required client certificate ([`ConsulDouble::start_tls`], as an agent with
//!   `verify_incoming`), using a throw-away CA made at start.
//!
//! Not modelled: the catalog and KV endpoints, namespaces and partitions, consistency modes
//! beyond accepting `stale`/`consistent`, `near`, `node-meta`, `cached`, Connect, and real
//! network probes for HTTP/TCP checks.
//!
//! ```
//! use sdkit_testkit::consul::{ConsulDouble, ServiceSpec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let consul = ConsulDouble::start().await.unwrap();
//! consul.insert_service(ServiceSpec::new("web", "web-1").port(8080).tag("v1"));
//! assert_eq!(consul.service_ids("web"), vec!["web-1".to_string()]);
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The default (and local) datacenter of the double.
pub const LOCAL_DC: &str = "dc1";
/// The name of the agent's node.
pub const LOCAL_NODE: &str = "node-1";

const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);
const MAX_BODY: usize = 1 << 20;

/// A fault the double injects instead of answering normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (500, 429, 503, …) and a short plain-text body.
    Status(u16),
    /// Accept the request and never answer (until the client gives up or the double is dropped).
    Hang,
    /// Answer 200 with a valid `X-Consul-Index` but a body that is not valid JSON.
    MalformedJson,
    /// Answer 200 with a body that is valid JSON but not a list of service entries.
    WrongShape,
    /// Answer at once (never block) with the real body and `X-Consul-Index: 0`.
    ZeroIndex,
}

#[derive(Debug, Clone)]
struct FaultRule {
    path_prefix: String,
    fault: Fault,
    remaining: Option<u32>,
}

/// One request as the double saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Decoded query parameters, in order (a parameter without value has an empty value).
    pub query: Vec<(String, String)>,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub at: Instant,
}

impl RecordedRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `true` when query parameter `name` is present (with or without a value).
    pub fn has_param(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A node that services are placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// Node address (IPv4 or IPv6 literal, or a host name).
    pub address: String,
    /// Datacenter.
    pub datacenter: String,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            name: LOCAL_NODE.into(),
            address: "127.0.0.1".into(),
            datacenter: LOCAL_DC.into(),
        }
    }
}

/// A service instance placed directly into the double's catalog (bypassing the agent API).
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    name: String,
    id: String,
    address: String,
    port: u16,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    weights: (u32, u32),
    node: NodeSpec,
    status: String,
}

impl ServiceSpec {
    /// Service `name`, instance `id`, on the local node, port 80, no address (so the node
    /// address applies), weights 1/1, one passing check `service:<id>`.
    pub fn new(name: impl Into<String>, id: impl Into<String>) -> Self {
        ServiceSpec {
            name: name.into(),
            id: id.into(),
            address: String::new(),
            port: 80,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            weights: (1, 1),
            node: NodeSpec::default(),
            status: "passing".into(),
        }
    }
    /// `Service.Address`.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }
    /// `Service.Port`.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// Adds a `Service.Meta` entry.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }
    /// `Service.Weights` (passing, warning).
    pub fn weights(mut self, passing: u32, warning: u32) -> Self {
        self.weights = (passing, warning);
        self
    }
    /// The node (its name, address and datacenter).
    pub fn node(mut self, name: &str, address: &str, datacenter: &str) -> Self {
        self.node = NodeSpec {
            name: name.into(),
            address: address.into(),
            datacenter: datacenter.into(),
        };
        self
    }
    /// The initial status of its check (`passing`, `warning`, `critical`).
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = status.into();
        self
    }
}

#[derive(Debug, Clone)]
struct Service {
    name: String,
    id: String,
    address: String,
    port: u16,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    weights: (u32, u32),
    node: NodeSpec,
    create_index: u64,
    modify_index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckKind {
    Ttl(Duration),
    Http,
    Tcp,
}

#[derive(Debug, Clone)]
struct Check {
    id: String,
    name: String,
    service_id: String,
    kind: CheckKind,
    status: String,
    output: String,
    /// TTL checks: when the TTL lapses.
    expires: Option<Instant>,
    deregister_after: Option<Duration>,
    critical_since: Option<Instant>,
    create_index: u64,
    modify_index: u64,
}

#[derive(Debug)]
struct State {
    index: u64,
    /// Modify index per service name (what `X-Consul-Index` reports for its health endpoint).
    service_index: HashMap<String, u64>,
    services: BTreeMap<String, Service>,
    checks: BTreeMap<String, Check>,
    datacenters: Vec<String>,
    acl_token: Option<String>,
    faults: Vec<FaultRule>,
    requests: Vec<RecordedRequest>,
}

impl State {
    fn bump(&mut self, service_name: &str) -> u64 {
        self.index += 1;
        self.service_index
            .insert(service_name.to_string(), self.index);
        self.index
    }

    fn service_index(&self, name: &str) -> u64 {
        // Consul reports the index of the tables involved, which is never 0 once the cluster
        // has a leader; a service that never existed reports 1 here.
        self.service_index.get(name).copied().unwrap_or(1).max(1)
    }

    fn remove_service(&mut self, id: &str) -> bool {
        let Some(service) = self.services.remove(id) else {
            return false;
        };
        self.checks.retain(|_, c| c.service_id != id);
        self.bump(&service.name);
        true
    }

    fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let pos = self
            .faults
            .iter()
            .position(|r| path.starts_with(&r.path_prefix))?;
        let rule = &mut self.faults[pos];
        let fault = rule.fault.clone();
        if let Some(n) = rule.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.faults.remove(pos);
            }
        }
        Some(fault)
    }

    /// TTL expiry and deregistration of long-critical services.
    fn reap(&mut self, now: Instant) {
        let mut changed = Vec::new();
        for check in self.checks.values_mut() {
            if let Some(expires) = check.expires
                && now >= expires
                && check.status != "critical"
            {
                check.status = "critical".into();
                check.output = "TTL expired".into();
                check.critical_since = Some(now);
                check.expires = None;
                changed.push(check.service_id.clone());
            }
        }
        for service_id in changed {
            if let Some(name) = self.services.get(&service_id).map(|s| s.name.clone()) {
                let index = self.bump(&name);
                for c in self.checks.values_mut() {
                    if c.service_id == service_id && c.status == "critical" {
                        c.modify_index = c.modify_index.max(index);
                    }
                }
            }
        }
        let doomed: Vec<String> = self
            .checks
            .values()
            .filter(|c| match (c.deregister_after, c.critical_since) {
                (Some(after), Some(since)) => c.status == "critical" && now >= since + after,
                _ => false,
            })
            .map(|c| c.service_id.clone())
            .collect();
        for id in doomed {
            self.remove_service(&id);
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after every state change, so blocked queries re-evaluate.
    changed: watch::Sender<u64>,
    /// Open client connections.
    connections: std::sync::atomic::AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// The Consul API double: an HTTP server on `127.0.0.1:<free port>`, stopped when dropped.
/// See the [module docs](self) for what it models.
pub struct ConsulDouble {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ConsulDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulDouble")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for ConsulDouble {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ConsulDouble {
    /// Starts the double on a free loopback port; it accepts connections once this returns.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(None).await
    }

    /// Starts the double behind TLS that requires a client certificate (mutual TLS), with a
    /// fresh test CA; returns the PKI the client needs. [`url`](Self::url) is then `https://`.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound or the test certificates cannot be made or written.
    pub async fn start_tls() -> std::io::Result<(Self, TestPki)> {
        let (pki, server) = TestPki::generate()?;
        let double = Self::start_with(Some(server)).await?;
        Ok((double, pki))
    }

    async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                index: 10,
                service_index: HashMap::new(),
                services: BTreeMap::new(),
                checks: BTreeMap::new(),
                datacenters: vec![LOCAL_DC.to_string()],
                acl_token: None,
                faults: Vec::new(),
                requests: Vec::new(),
            }),
            changed: watch::channel(0).0,
            connections: 0.into(),
        });
        let is_tls = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let server = tokio::spawn(serve(listener, Arc::clone(&shared), acceptor));
        let reaper = tokio::spawn(reap_loop(Arc::clone(&shared)));
        Ok(ConsulDouble {
            addr,
            tls: is_tls,
            shared,
            tasks: vec![server, reaper],
        })
    }

    /// The address the double listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (`https://` when started with [`start_tls`](Self::start_tls)).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Requires `token` on every request from now on.
    pub fn enable_acl(&self, token: impl Into<String>) {
        self.shared.lock().acl_token = Some(token.into());
    }

    /// Makes datacenter `dc` known (queries with `dc=<dc>` answer instead of failing).
    pub fn add_datacenter(&self, dc: impl Into<String>) {
        self.shared.lock().datacenters.push(dc.into());
    }

    /// Injects `fault` into every request whose path starts with `path_prefix`, until
    /// [`clear_faults`](Self::clear_faults).
    pub fn inject(&self, path_prefix: impl Into<String>, fault: Fault) {
        self.shared.lock().faults.push(FaultRule {
            path_prefix: path_prefix.into(),
            fault,
            remaining: None,
        });
    }

    /// Injects `fault` into the next `times` requests whose path starts with `path_prefix`.
    pub fn inject_times(&self, path_prefix: impl Into<String>, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        self.shared.lock().faults.push(FaultRule {
            path_prefix: path_prefix.into(),
            fault,
            remaining: Some(times),
        });
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Sets the raft index back to `to` (and every service index above it down to it), as after
    /// a snapshot restore: clients blocking on a higher index see the index go backwards.
    pub fn rewind_index(&self, to: u64) {
        {
            let mut state = self.shared.lock();
            state.index = to.max(1);
            let index = state.index;
            for v in state.service_index.values_mut() {
                *v = (*v).min(index);
            }
        }
        self.shared.notify();
    }

    /// The number of client connections open now (a connection closes when the client drops
    /// it: hyper notices the end of the stream even while a request is in flight).
    pub fn open_connections(&self) -> usize {
        self.shared
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current raft index.
    pub fn index(&self) -> u64 {
        self.shared.lock().index
    }

    /// Places a service instance directly into the catalog (with one check, `service:<id>`).
    pub fn insert_service(&self, spec: ServiceSpec) {
        {
            let mut state = self.shared.lock();
            state.remove_service(&spec.id);
            let index = state.bump(&spec.name);
            let check_id = format!("service:{}", spec.id);
            state.checks.insert(
                check_id.clone(),
                Check {
                    id: check_id,
                    name: format!("Service '{}' check", spec.name),
                    service_id: spec.id.clone(),
                    kind: CheckKind::Http,
                    critical_since: (spec.status == "critical").then(Instant::now),
                    status: spec.status,
                    output: String::new(),
                    expires: None,
                    deregister_after: None,
                    create_index: index,
                    modify_index: index,
                },
            );
            state.services.insert(
                spec.id.clone(),
                Service {
                    name: spec.name,
                    id: spec.id,
                    address: spec.address,
                    port: spec.port,
                    tags: spec.tags,
                    meta: spec.meta,
                    weights: spec.weights,
                    node: spec.node,
                    create_index: index,
                    modify_index: index,
                },
            );
        }
        self.shared.notify();
    }

    /// Removes a service instance; `false` when unknown.
    pub fn remove_service(&self, id: &str) -> bool {
        let removed = self.shared.lock().remove_service(id);
        self.shared.notify();
        removed
    }

    /// Sets a check's status (`passing`, `warning`, `critical`); `false` when unknown.
    pub fn set_check_status(&self, check_id: &str, status: &str) -> bool {
        let ok = set_status(&mut self.shared.lock(), check_id, status, "set by test");
        self.shared.notify();
        ok
    }

    /// The IDs of service `name`'s instances (any health), sorted.
    pub fn service_ids(&self, name: &str) -> Vec<String> {
        self.shared
            .lock()
            .services
            .values()
            .filter(|s| s.name == name)
            .map(|s| s.id.clone())
            .collect()
    }

    /// The status of check `check_id`, if it exists.
    pub fn check_status(&self, check_id: &str) -> Option<String> {
        self.shared
            .lock()
            .checks
            .get(check_id)
            .map(|c| c.status.clone())
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The number of requests whose path starts with `path_prefix`.
    pub fn request_count(&self, path_prefix: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .count()
    }

    /// The last request whose path starts with `path_prefix`.
    pub fn last_request(&self, path_prefix: &str) -> Option<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .rev()
            .find(|r| r.path.starts_with(path_prefix))
            .cloned()
    }
}

/// A throw-away PKI for TLS tests: a CA, a server certificate for `127.0.0.1`, and a client
/// certificate. The client files live in a temporary directory removed on drop.
#[derive(Debug)]
pub struct TestPki {
    /// The CA certificate (PEM) the client must trust.
    pub ca_pem: String,
    /// The client certificate chain (PEM file).
    pub client_cert_file: std::path::PathBuf,
    /// The client private key (PEM file).
    pub client_key_file: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestPki {
    fn generate() -> std::io::Result<(Self, Arc<rustls::ServerConfig>)> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let err = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(|e| err(&e))?)
            .map_err(|e| err(&e))?;
        let server_key = KeyPair::generate().map_err(|e| err(&e))?;
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .map_err(|e| err(&e))?
            .signed_by(&server_key, &ca)
            .map_err(|e| err(&e))?;
        let client_key = KeyPair::generate().map_err(|e| err(&e))?;
        let client_cert = CertificateParams::new(vec!["sdkit-client".to_string()])
            .map_err(|e| err(&e))?
            .signed_by(&client_key, &ca)
            .map_err(|e| err(&e))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).map_err(|e| err(&e))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| err(&e))?;
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(server_cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .map_err(|e| err(&e))?;

        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sdkit-consul-pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let client_cert_file = dir.join("client.pem");
        let client_key_file = dir.join("client-key.pem");
        std::fs::write(&client_cert_file, client_cert.pem())?;
        std::fs::write(&client_key_file, client_key.serialize_pem())?;
        Ok((
            TestPki {
                ca_pem: ca.pem(),
                client_cert_file,
                client_key_file,
                dir,
            },
            Arc::new(server),
        ))
    }
}

fn set_status(state: &mut State, check_id: &str, status: &str, output: &str) -> bool {
    let Some(check) = state.checks.get_mut(check_id) else {
        return false;
    };
    let now = Instant::now();
    if let CheckKind::Ttl(ttl) = check.kind {
        check.expires = Some(now + ttl);
    }
    check.output = output.to_string();
    if check.status == status {
        return true;
    }
    check.status = status.to_string();
    check.critical_since = (status == "critical").then_some(now);
    let service_id = check.service_id.clone();
    if let Some(name) = state.services.get(&service_id).map(|s| s.name.clone()) {
        let index = state.bump(&name);
        if let Some(check) = state.checks.get_mut(check_id) {
            check.modify_index = index;
        }
    }
    true
}

async fn reap_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tick.tick().await;
        let before = shared.lock().index;
        let after = {
            let mut state = shared.lock();
            state.reap(Instant::now());
            state.index
        };
        if after != before {
            shared.notify();
        }
    }
}

async fn serve_io<I>(io: I, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    struct Open(Arc<Shared>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0
                .connections
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    shared
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _open = Open(Arc::clone(&shared));
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    match acceptor {
                        None => serve_io(stream, shared).await,
                        Some(acceptor) => {
                            // A failed handshake (no or bad client certificate) closes it.
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve_io(tls, shared).await;
                            }
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.into())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json_resp(value: &Value, index: Option<u64>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(index) = index {
        insert_index(&mut resp, index);
    }
    resp
}

fn insert_index(resp: &mut Resp, index: u64) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(&index.to_string()) {
        resp.headers_mut().insert("x-consul-index", v);
    }
    resp.headers_mut().insert(
        "x-consul-knownleader",
        hyper::header::HeaderValue::from_static("true"),
    );
    resp.headers_mut().insert(
        "x-consul-lastcontact",
        hyper::header::HeaderValue::from_static("0"),
    );
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    // Go's net/http hands Consul the decoded path.
    let path = percent_decode(req.uri().path());
    let query = parse_query(req.uri().query());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers,
        at: Instant::now(),
    };
    let token = recorded
        .header("x-consul-token")
        .map(str::to_string)
        .or_else(|| recorded.param("token").map(str::to_string));

    let fault = {
        let mut state = shared.lock();
        state.requests.push(recorded);
        if let Some(required) = &state.acl_token
            && token.as_deref() != Some(required.as_str())
        {
            return text(StatusCode::FORBIDDEN, "ACL not found");
        }
        state.take_fault(&path)
    };
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = match code {
                429 => "rate limit exceeded",
                503 => "No cluster leader",
                _ => "Unexpected response code: injected fault",
            };
            return text(status, body);
        }
        Some(Fault::Hang) => return std::future::pending::<Resp>().await,
        _ => {}
    }
    let params = Params(query);

    if let Some(name) = path.strip_prefix("/v1/health/service/") {
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        return health_service(&shared, name, &params, fault).await;
    }
    if path == "/v1/agent/service/register" {
        if method != Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Request decode failed: {e}"),
                );
            }
        };
        let resp = register(&shared, &body, params.has("replace-existing-checks"));
        shared.notify();
        return resp;
    }
    if let Some(id) = path.strip_prefix("/v1/agent/service/deregister/") {
        if method != Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let removed = shared.lock().remove_service(id);
        shared.notify();
        return if removed {
            text(StatusCode::OK, "")
        } else {
            text(
                StatusCode::NOT_FOUND,
                format!(
                    "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
                ),
            )
        };
    }
    if let Some(id) = path.strip_prefix("/v1/agent/service/") {
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let state = shared.lock();
        return match state.services.get(id) {
            Some(s) => json_resp(&agent_service_json(s), Some(s.modify_index)),
            None => text(StatusCode::NOT_FOUND, format!("unknown service ID: {id}")),
        };
    }
    for (prefix, status) in [
        ("/v1/agent/check/pass/", "passing"),
        ("/v1/agent/check/warn/", "warning"),
        ("/v1/agent/check/fail/", "critical"),
    ] {
        if let Some(id) = path.strip_prefix(prefix) {
            if method != Method::PUT {
                return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            let resp = {
                let mut state = shared.lock();
                match state.checks.get(id).map(|c| c.kind) {
                    None => text(
                        StatusCode::NOT_FOUND,
                        format!(
                            "Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."
                        ),
                    ),
                    Some(CheckKind::Http | CheckKind::Tcp) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("CheckID {id:?} does not have associated TTL"),
                    ),
                    Some(CheckKind::Ttl(_)) => {
                        let note = params.get("note").unwrap_or("").to_string();
                        set_status(&mut state, id, status, &note);
                        text(StatusCode::OK, "")
                    }
                }
            };
            shared.notify();
            return resp;
        }
    }
    if path == "/v1/status/leader" {
        return json_resp(&json!("127.0.0.1:8300"), None);
    }
    text(StatusCode::NOT_FOUND, "404 page not found")
}

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v != "false")
    }
}

async fn health_service(
    shared: &Arc<Shared>,
    name: &str,
    params: &Params,
    fault: Option<Fault>,
) -> Resp {
    let min_index = match params.get("index") {
        None | Some("") => 0,
        Some(v) => match v.parse::<u64>() {
            Ok(i) => i,
            Err(_) => return text(StatusCode::BAD_REQUEST, "Invalid index"),
        },
    };
    let wait = match params.get("wait") {
        None | Some("") => DEFAULT_WAIT,
        Some(v) => match parse_go_duration(v) {
            Some(d) => d.min(MAX_WAIT),
            None => return text(StatusCode::BAD_REQUEST, "Invalid wait time"),
        },
    };
    let dc = params
        .get("dc")
        .filter(|d| !d.is_empty())
        .unwrap_or(LOCAL_DC);
    if !shared.lock().datacenters.iter().any(|d| d == dc) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    let filter = match params.get("filter").filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(f) => match parse_filter(f) {
            Ok(expr) => Some(expr),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to create boolean expression evaluator: {e}"),
                );
            }
        },
    };
    let tags: Vec<&str> = params.all("tag").collect();
    let passing = params.has("passing");

    match fault {
        Some(Fault::MalformedJson) => {
            let index = shared.lock().service_index(name);
            let mut resp = text(StatusCode::OK, "[{\"Node\": {\"Node\": \"node-1\", \"Addr");
            insert_index(&mut resp, index);
            return resp;
        }
        Some(Fault::WrongShape) => {
            let index = shared.lock().service_index(name);
            return json_resp(&json!({"Nodes": "not a list"}), Some(index));
        }
        _ => {}
    }

    // Blocking: wait while the index has not moved past the client's, at most wait + jitter.
    let jitter = if wait.is_zero() {
        Duration::ZERO
    } else {
        wait.mul_f64(rand::random_range(0.0..=1.0) / 16.0)
    };
    let deadline = tokio::time::Instant::now() + wait + jitter;
    let mut changed = shared.changed.subscribe();
    if fault != Some(Fault::ZeroIndex) && min_index > 0 {
        loop {
            changed.borrow_and_update();
            if shared.lock().service_index(name) > min_index {
                break;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => break,
            }
        }
    }

    let state = shared.lock();
    let index = if fault == Some(Fault::ZeroIndex) {
        0
    } else {
        state.service_index(name)
    };
    let mut entries = Vec::new();
    for service in state.services.values() {
        if service.name != name || service.node.datacenter != dc {
            continue;
        }
        if !tags.iter().all(|t| service.tags.iter().any(|st| st == t)) {
            continue;
        }
        let checks: Vec<&Check> = state
            .checks
            .values()
            .filter(|c| c.service_id == service.id)
            .collect();
        if passing && checks.iter().any(|c| c.status != "passing") {
            continue;
        }
        let entry = entry_json(service, &checks);
        if let Some(expr) = &filter
            && !expr.eval(&entry)
        {
            continue;
        }
        entries.push(entry);
    }
    json_resp(&Value::Array(entries), Some(index))
}

fn string_list(items: &[String]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items.iter().map(|t| Value::String(t.clone())).collect())
    }
}

fn string_map(items: &BTreeMap<String, String>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Object(
            items
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        )
    }
}

/// One element of `/v1/health/service/:name`, in the shape Consul's docs give.
fn entry_json(s: &Service, checks: &[&Check]) -> Value {
    let mut check_list = vec![json!({
        "Node": s.node.name,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": "passing",
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Definition": {},
        "CreateIndex": 5,
        "ModifyIndex": 5
    })];
    for c in checks {
        check_list.push(json!({
            "Node": s.node.name,
            "CheckID": c.id,
            "Name": c.name,
            "Status": c.status,
            "Notes": "",
            "Output": c.output,
            "ServiceID": s.id,
            "ServiceName": s.name,
            "ServiceTags": s.tags,
            "Type": match c.kind { CheckKind::Ttl(_) => "ttl", CheckKind::Http => "http", CheckKind::Tcp => "tcp" },
            "Definition": {},
            "CreateIndex": c.create_index,
            "ModifyIndex": c.modify_index
        }));
    }
    json!({
        "Node": {
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
            "Node": s.node.name,
            "Address": s.node.address,
            "Datacenter": s.node.datacenter,
            "TaggedAddresses": {
                "lan": s.node.address,
                "wan": s.node.address
            },
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 5,
            "ModifyIndex": 5
        },
        "Service": {
            "ID": s.id,
            "Service": s.name,
            "Tags": string_list(&s.tags),
            "Address": s.address,
            "TaggedAddresses": null,
            "Meta": string_map(&s.meta),
            "Port": s.port,
            "Weights": {"Passing": s.weights.0, "Warning": s.weights.1},
            "EnableTagOverride": false,
            "Proxy": {"MeshGateway": {}, "Expose": {}},
            "Connect": {},
            "CreateIndex": s.create_index,
            "ModifyIndex": s.modify_index
        },
        "Checks": check_list
    })
}

fn agent_service_json(s: &Service) -> Value {
    json!({
        "ID": s.id,
        "Service": s.name,
        "Tags": string_list(&s.tags),
        "Meta": string_map(&s.meta),
        "Port": s.port,
        "Address": s.address,
        "Weights": {"Passing": s.weights.0, "Warning": s.weights.1},
        "EnableTagOverride": false,
        "Datacenter": s.node.datacenter,
        "ContentHash": format!("{:016x}", s.modify_index)
    })
}

/// `PUT /v1/agent/service/register`, parsed by hand from the documented body.
fn register(shared: &Shared, body: &[u8], replace_checks: bool) -> Resp {
    let bad = |msg: String| text(StatusCode::BAD_REQUEST, msg);
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad(format!("Request decode failed: {e}")),
    };
    let Some(obj) = value.as_object() else {
        return bad("Request decode failed: body is not an object".into());
    };
    let name = match obj.get("Name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        _ => return bad("Missing service name".into()),
    };
    let id = match obj.get("ID") {
        Some(Value::String(i)) if !i.is_empty() => i.clone(),
        None | Some(Value::Null) => name.clone(),
        Some(Value::String(_)) => name.clone(),
        Some(_) => return bad("Request decode failed: ID is not a string".into()),
    };
    let address = match obj.get("Address") {
        Some(Value::String(a)) => a.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return bad("Request decode failed: Address is not a string".into()),
    };
    let port = match obj.get("Port") {
        None | Some(Value::Null) => 0,
        Some(p) => match p.as_u64().and_then(|p| u16::try_from(p).ok()) {
            Some(p) => p,
            None => return bad("Request decode failed: invalid Port".into()),
        },
    };
    let tags = match obj.get("Tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut tags = Vec::new();
            for t in items {
                match t.as_str() {
                    Some(t) => tags.push(t.to_string()),
                    None => return bad("Request decode failed: Tags must be strings".into()),
                }
            }
            tags
        }
        Some(_) => return bad("Request decode failed: Tags is not a list".into()),
    };
    let meta = match obj.get("Meta") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => {
            let mut meta = BTreeMap::new();
            for (k, v) in m {
                match v.as_str() {
                    Some(v) => {
                        meta.insert(k.clone(), v.to_string());
                    }
                    None => return bad("Request decode failed: Meta values must be strings".into()),
                }
            }
            meta
        }
        Some(_) => return bad("Request decode failed: Meta is not an object".into()),
    };
    let weights = match obj.get("Weights") {
        None | Some(Value::Null) => (1, 1),
        Some(Value::Object(w)) => {
            let get = |k: &str, default: u64| w.get(k).and_then(Value::as_u64).unwrap_or(default);
            let passing = get("Passing", 1);
            let warning = get("Warning", 1);
            if passing == 0 {
                return bad("Invalid Weights: Passing must be greater than 0".into());
            }
            (
                u32::try_from(passing).unwrap_or(u32::MAX),
                u32::try_from(warning).unwrap_or(u32::MAX),
            )
        }
        Some(_) => return bad("Request decode failed: Weights is not an object".into()),
    };
    let mut check_defs = Vec::new();
    if let Some(c) = obj.get("Check").filter(|c| !c.is_null()) {
        check_defs.push(c.clone());
    }
    if let Some(Value::Array(cs)) = obj.get("Checks") {
        check_defs.extend(cs.iter().cloned());
    }

    let mut state = shared.lock();
    let index = state.index + 1;
    let mut checks = Vec::new();
    for (n, def) in check_defs.iter().enumerate() {
        let Some(def) = def.as_object() else {
            return bad("Request decode failed: Check is not an object".into());
        };
        let field = |k: &str| def.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let kind = if let Some(ttl) = field("TTL") {
            match parse_go_duration(ttl) {
                Some(d) if !d.is_zero() => CheckKind::Ttl(d),
                _ => return bad(format!("Invalid check: invalid TTL {ttl:?}")),
            }
        } else if field("HTTP").is_some() || field("TCP").is_some() {
            match field("Interval").and_then(parse_go_duration) {
                Some(d) if !d.is_zero() => {}
                _ => return bad("Invalid check: Interval required for HTTP/TCP checks".into()),
            }
            if field("HTTP").is_some() {
                CheckKind::Http
            } else {
                CheckKind::Tcp
            }
        } else {
            return bad("Invalid check: TTL must be > 0 for TTL checks; HTTP or TCP with Interval otherwise".into());
        };
        let deregister_after = match field("DeregisterCriticalServiceAfter") {
            None => None,
            Some(d) => match parse_go_duration(d) {
                Some(d) => Some(d),
                None => {
                    return bad(format!(
                        "Invalid check: invalid DeregisterCriticalServiceAfter {d:?}"
                    ));
                }
            },
        };
        let check_id = field("CheckID").map(str::to_string).unwrap_or_else(|| {
            if check_defs.len() == 1 {
                format!("service:{id}")
            } else {
                format!("service:{id}:{}", n + 1)
            }
        });
        let status = field("Status").unwrap_or("critical").to_string();
        if !["passing", "warning", "critical"].contains(&status.as_str()) {
            return bad(format!("Invalid check: invalid Status {status:?}"));
        }
        let now = Instant::now();
        checks.push(Check {
            id: check_id,
            name: field("Name")
                .map(str::to_string)
                .unwrap_or_else(|| format!("Service '{name}' check")),
            service_id: id.clone(),
            expires: match kind {
                CheckKind::Ttl(ttl) => Some(now + ttl),
                _ => None,
            },
            kind,
            critical_since: (status == "critical").then_some(now),
            status,
            output: String::new(),
            deregister_after,
            create_index: index,
            modify_index: index,
        });
    }

    let create_index = state
        .services
        .get(&id)
        .map(|s| s.create_index)
        .unwrap_or(index);
    if replace_checks {
        state.checks.retain(|_, c| c.service_id != id);
    }
    for check in checks {
        state.checks.insert(check.id.clone(), check);
    }
    if let Some(old) = state.services.get(&id)
        && old.name != name
    {
        let old_name = old.name.clone();
        state.bump(&old_name);
    }
    state.services.insert(
        id.clone(),
        Service {
            name: name.clone(),
            id,
            address,
            port,
            tags,
            meta,
            weights,
            node: NodeSpec::default(),
            create_index,
            modify_index: index,
        },
    );
    state.bump(&name);
    text(StatusCode::OK, "")
}

/// Go's `time.ParseDuration` for the forms HTTP clients send (`10s`, `1m30s`, `1500ms`, `0`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

// ---------------------------------------------------------------------------------------------
// The filter language (a go-bexpr subset).

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match {
        selector: Vec<String>,
        op: Op,
        value: String,
    },
    Empty {
        selector: Vec<String>,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Contains,
    NotContains,
}

impl Expr {
    fn eval(&self, entry: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.eval(entry) && b.eval(entry),
            Expr::Or(a, b) => a.eval(entry) || b.eval(entry),
            Expr::Not(a) => !a.eval(entry),
            Expr::Empty { selector, negate } => {
                let empty = match lookup(entry, selector) {
                    None | Some(Value::Null) => true,
                    Some(Value::Array(a)) => a.is_empty(),
                    Some(Value::Object(o)) => o.is_empty(),
                    Some(Value::String(s)) => s.is_empty(),
                    Some(_) => false,
                };
                empty != *negate
            }
            Expr::Match {
                selector,
                op,
                value,
            } => {
                let target = lookup(entry, selector);
                let contains = || match target {
                    Some(Value::Array(items)) => items.iter().any(|i| scalar_eq(i, value)),
                    Some(Value::Object(map)) => map.contains_key(value),
                    Some(Value::String(s)) => s.contains(value.as_str()),
                    _ => false,
                };
                match op {
                    Op::Eq => target.is_some_and(|t| scalar_eq(t, value)),
                    Op::Ne => !target.is_some_and(|t| scalar_eq(t, value)),
                    Op::Contains => contains(),
                    Op::NotContains => !contains(),
                }
            }
        }
    }
}

fn scalar_eq(v: &Value, s: &str) -> bool {
    match v {
        Value::String(x) => x == s,
        Value::Number(n) => n.to_string() == s,
        Value::Bool(b) => b.to_string() == s,
        _ => false,
    }
}

fn lookup<'a>(entry: &'a Value, selector: &[String]) -> Option<&'a Value> {
    selector
        .iter()
        .try_fold(entry, |v, key| v.get(key.as_str()))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    EqEq,
    NotEq,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::EqEq);
                i += 2
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::NotEq);
                i += 2
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(e @ ('"' | '\\')) => value.push(*e),
                                Some('n') => value.push('\n'),
                                Some('t') => value.push('\t'),
                                _ => return Err("invalid escape in string".into()),
                            }
                            i += 2;
                        }
                        Some(ch) => {
                            value.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(value));
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&ch| ch == '`')
                    .ok_or("unterminated raw string")?;
                out.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '/' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-' | '/'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn parse_filter(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: tokenize(s)?,
        pos: 0,
    };
    let expr = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected token {:?}", p.toks[p.pos]));
    }
    Ok(expr)
}

impl Parser {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(w)) if w == kw)
    }
    /// Consumes keyword `kw` if it comes next.
    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.peek_kw(kw);
        if found {
            self.pos += 1;
        }
        found
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_kw("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.eat_kw("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_kw("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.toks.get(self.pos) == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err("missing closing parenthesis".into());
            }
            return Ok(e);
        }
        self.match_expr()
    }
    fn selector(word: &str) -> Result<Vec<String>, String> {
        let parts: Vec<String> = word.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!("invalid selector {word:?}"));
        }
        Ok(parts)
    }
    fn match_expr(&mut self) -> Result<Expr, String> {
        match self.next() {
            // value in Selector / value not in Selector
            Some(Tok::Str(value)) => {
                let negate = self.eat_kw("not");
                if !self.eat_kw("in") {
                    return Err("expected `in` after a value".into());
                }
                let Some(Tok::Ident(sel)) = self.next() else {
                    return Err("expected a selector after `in`".into());
                };
                Ok(Expr::Match {
                    selector: Self::selector(&sel)?,
                    op: if negate {
                        Op::NotContains
                    } else {
                        Op::Contains
                    },
                    value,
                })
            }
            Some(Tok::Ident(sel)) => {
                let selector = Self::selector(&sel)?;
                match self.next() {
                    Some(Tok::EqEq) => Ok(Expr::Match {
                        selector,
                        op: Op::Eq,
                        value: self.value()?,
                    }),
                    Some(Tok::NotEq) => Ok(Expr::Match {
                        selector,
                        op: Op::Ne,
                        value: self.value()?,
                    }),
                    Some(Tok::Ident(w)) if w == "contains" => Ok(Expr::Match {
                        selector,
                        op: Op::Contains,
                        value: self.value()?,
                    }),
                    Some(Tok::Ident(w)) if w == "not" => {
                        if !self.eat_kw("contains") {
                            return Err("expected `contains` after `not`".into());
                        }
                        Ok(Expr::Match {
                            selector,
                            op: Op::NotContains,
                            value: self.value()?,
                        })
                    }
                    Some(Tok::Ident(w)) if w == "is" => {
                        let negate = self.eat_kw("not");
                        if !self.eat_kw("empty") {
                            return Err("expected `empty`".into());
                        }
                        Ok(Expr::Empty { selector, negate })
                    }
                    other => Err(format!("expected an operator, found {other:?}")),
                }
            }
            other => Err(format!("expected a selector or value, found {other:?}")),
        }
    }
    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(v)) | Some(Tok::Ident(v)) => Ok(v),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("55s"), Some(Duration::from_secs(55)));
        assert_eq!(
            parse_go_duration("1500ms"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("s"), None);
    }

    #[test]
    fn filters() {
        let entry = json!({
            "Service": {"Tags": ["v1", "blue"], "Meta": {"zone": "a"}, "ID": "x\"y"},
            "Node": {"Datacenter": "dc1"}
        });
        let ok = |f: &str| parse_filter(f).unwrap().eval(&entry);
        assert!(ok(r#"Service.Tags contains "v1""#));
        assert!(ok(
            r#""blue" in Service.Tags and Service.Tags contains "v1""#
        ));
        assert!(!ok(
            r#"Service.Tags contains "v1" and Service.Tags contains "v2""#
        ));
        assert!(ok(
            r#"(Service.Tags contains "v2") or Service.Meta.zone == "a""#
        ));
        assert!(ok(r#"Service.ID == "x\"y""#));
        assert!(ok(r#"not Service.Meta.zone != `a`"#));
        assert!(ok("Service.Meta.missing is empty"));
        assert!(ok(r#""v3" not in Service.Tags"#));
        assert!(parse_filter("Service.Tags contains").is_err());
        assert!(parse_filter("(Service.Tags contains \"a\"").is_err());
        assert!(parse_filter("Service.Tags ~ \"a\"").is_err());
    }
}
