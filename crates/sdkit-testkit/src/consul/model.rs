//! The double's data: services, checks, faults, recorded requests, and the shared state.

use super::*;

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
pub(crate) struct FaultRule {
    pub(crate) path_prefix: String,
    pub(crate) fault: Fault,
    pub(crate) remaining: Option<u32>,
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
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) tags: Vec<String>,
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) weights: (u32, u32),
    pub(crate) node: NodeSpec,
    pub(crate) status: String,
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
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) tags: Vec<String>,
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) weights: (u32, u32),
    pub(crate) node: NodeSpec,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckKind {
    Ttl(Duration),
    Http,
    Tcp,
}

#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) id: String,
    /// The node the check (and its service) lives on.
    pub(crate) node: String,
    pub(crate) name: String,
    pub(crate) service_id: String,
    pub(crate) kind: CheckKind,
    pub(crate) status: String,
    pub(crate) output: String,
    /// TTL checks: when the TTL lapses.
    pub(crate) expires: Option<Instant>,
    pub(crate) deregister_after: Option<Duration>,
    pub(crate) critical_since: Option<Instant>,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

/// A catalog key: (node name, ID). Consul keys service instances and checks by node and ID:
/// an ID is unique per agent (node), not per cluster, so two nodes may report the same one.
pub(crate) type NodeKey = (String, String);

/// `(node, id)` as a catalog key.
pub(crate) fn key(node: &str, id: &str) -> NodeKey {
    (node.to_string(), id.to_string())
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) index: u64,
    /// Modify index per service name (what `X-Consul-Index` reports for its health endpoint).
    pub(crate) service_index: HashMap<String, u64>,
    /// Service instances by (node, service ID).
    pub(crate) services: BTreeMap<NodeKey, Service>,
    /// Checks by (node, check ID).
    pub(crate) checks: BTreeMap<NodeKey, Check>,
    pub(crate) datacenters: Vec<String>,
    pub(crate) acl_token: Option<String>,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) requests: Vec<RecordedRequest>,
}

impl State {
    pub(crate) fn bump(&mut self, service_name: &str) -> u64 {
        self.index += 1;
        self.service_index
            .insert(service_name.to_string(), self.index);
        self.index
    }

    pub(crate) fn service_index(&self, name: &str) -> u64 {
        // Consul reports the index of the tables involved, which is never 0 once the cluster
        // has a leader; a service that never existed reports 1 here.
        self.service_index.get(name).copied().unwrap_or(1).max(1)
    }

    /// Removes service `id` of `node` and its checks; `false` when unknown.
    pub(crate) fn remove_service(&mut self, node: &str, id: &str) -> bool {
        let Some(service) = self.services.remove(&key(node, id)) else {
            return false;
        };
        self.checks
            .retain(|_, c| !(c.node == node && c.service_id == id));
        self.bump(&service.name);
        true
    }

    pub(crate) fn take_fault(&mut self, path: &str) -> Option<Fault> {
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
    pub(crate) fn reap(&mut self, now: Instant) {
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
                changed.push(key(&check.node, &check.service_id));
            }
        }
        for service in changed {
            if let Some(name) = self.services.get(&service).map(|s| s.name.clone()) {
                let index = self.bump(&name);
                for c in self.checks.values_mut() {
                    if c.node == service.0 && c.service_id == service.1 && c.status == "critical" {
                        c.modify_index = c.modify_index.max(index);
                    }
                }
            }
        }
        let doomed: Vec<NodeKey> = self
            .checks
            .values()
            .filter(|c| match (c.deregister_after, c.critical_since) {
                (Some(after), Some(since)) => c.status == "critical" && now >= since + after,
                _ => false,
            })
            .map(|c| key(&c.node, &c.service_id))
            .collect();
        for (node, id) in doomed {
            self.remove_service(&node, &id);
        }
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Bumped after every state change, so blocked queries re-evaluate.
    pub(crate) changed: watch::Sender<u64>,
    /// Open client connections.
    pub(crate) connections: std::sync::atomic::AtomicUsize,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}
