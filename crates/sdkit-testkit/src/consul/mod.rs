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
//! * The catalog keys service instances (and checks) by **node and ID**, as Consul does: a
//!   service ID is unique per agent, not per cluster, so [`ServiceSpec::node`] places a second
//!   instance with the same ID on another node. The agent endpoints act on the agent's node
//!   ([`LOCAL_NODE`]).
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

mod endpoints;
mod filter;
mod http;
mod model;
mod pki;

#[allow(unused_imports)]
use endpoints::*;
#[allow(unused_imports)]
use filter::*;
#[allow(unused_imports)]
use http::*;
pub use model::*;
pub use pki::TestPki;

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

    /// Places a service instance directly into the catalog (with one check, `service:<id>`),
    /// on the spec's node (by default the agent's, [`LOCAL_NODE`]). As in Consul, service IDs
    /// are unique per node: an instance with the same ID on another node is a second instance.
    pub fn insert_service(&self, spec: ServiceSpec) {
        {
            let mut state = self.shared.lock();
            let node = spec.node.name.clone();
            state.remove_service(&node, &spec.id);
            let index = state.bump(&spec.name);
            let check_id = format!("service:{}", spec.id);
            state.checks.insert(
                key(&node, &check_id),
                Check {
                    id: check_id,
                    node: node.clone(),
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
                key(&node, &spec.id),
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

    /// Removes service instance `id` of the agent's node ([`LOCAL_NODE`]); `false` when
    /// unknown.
    pub fn remove_service(&self, id: &str) -> bool {
        self.remove_node_service(LOCAL_NODE, id)
    }

    /// Removes service instance `id` of node `node`; `false` when unknown.
    pub fn remove_node_service(&self, node: &str, id: &str) -> bool {
        let removed = self.shared.lock().remove_service(node, id);
        self.shared.notify();
        removed
    }

    /// Sets the status (`passing`, `warning`, `critical`) of check `check_id` of the agent's
    /// node; `false` when unknown.
    pub fn set_check_status(&self, check_id: &str, status: &str) -> bool {
        let ok = set_status(
            &mut self.shared.lock(),
            LOCAL_NODE,
            check_id,
            status,
            "set by test",
        );
        self.shared.notify();
        ok
    }

    /// The IDs of service `name`'s instances (any health, every node), sorted.
    pub fn service_ids(&self, name: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .shared
            .lock()
            .services
            .values()
            .filter(|s| s.name == name)
            .map(|s| s.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The status of check `check_id` of the agent's node, if it exists.
    pub fn check_status(&self, check_id: &str) -> Option<String> {
        self.shared
            .lock()
            .checks
            .get(&key(LOCAL_NODE, check_id))
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
