//! Consul's JSON, as the client reads and writes it: the entries of
//! `/v1/health/service/:name`, the registration body, and the small answers. Written from
//! Consul's API documentation; the Consul double in `sdkit-testkit` writes the same shapes
//! independently, so a mistake here cannot hide in both.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One element of `/v1/health/service/:name`: a node, a service instance on it, and its checks.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceEntry {
    /// The node.
    #[serde(rename = "Node")]
    pub node: Node,
    /// The service instance.
    #[serde(rename = "Service")]
    pub service: AgentService,
    /// Node and service checks.
    #[serde(rename = "Checks", default)]
    pub checks: Option<Vec<HealthCheck>>,
}

/// The `Node` of a service entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    /// Node name.
    #[serde(rename = "Node", default)]
    pub node: String,
    /// Node address.
    #[serde(rename = "Address", default)]
    pub address: String,
    /// Datacenter.
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
}

/// The `Service` of a service entry.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentService {
    /// Service instance ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service name.
    #[serde(rename = "Service", default)]
    pub service: String,
    /// Tags (`null` when none).
    #[serde(rename = "Tags", default)]
    pub tags: Option<Vec<String>>,
    /// Service address; empty means "use the node's".
    #[serde(rename = "Address", default)]
    pub address: String,
    /// Port.
    #[serde(rename = "Port", default)]
    pub port: u64,
    /// Meta (`null` when none).
    #[serde(rename = "Meta", default)]
    pub meta: Option<BTreeMap<String, String>>,
    /// Weights (absent in old Consul versions).
    #[serde(rename = "Weights", default)]
    pub weights: Option<ServiceWeights>,
}

/// `Service.Weights`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct ServiceWeights {
    /// Weight while passing.
    #[serde(rename = "Passing", default)]
    pub passing: u32,
    /// Weight while warning.
    #[serde(rename = "Warning", default)]
    pub warning: u32,
}

/// One check of a service entry.
#[derive(Debug, Clone, Deserialize)]
pub struct HealthCheck {
    /// Check ID.
    #[serde(rename = "CheckID", default)]
    pub check_id: String,
    /// `passing`, `warning`, `critical` or `maintenance`.
    #[serde(rename = "Status", default)]
    pub status: String,
    /// The service the check belongs to (empty for node checks).
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
}

/// Parameters of one health query.
#[derive(Debug, Clone, Default)]
pub struct HealthQuery<'a> {
    /// Only passing instances.
    pub passing: bool,
    /// A `filter` expression.
    pub filter: Option<&'a str>,
    /// Datacenter.
    pub datacenter: Option<&'a str>,
    /// Stale reads.
    pub stale: bool,
    /// Blocking index (0: do not block).
    pub index: u64,
    /// Blocking wait (sent with a non-zero index).
    pub wait: Duration,
}

/// The answer of a health query.
#[derive(Debug, Clone)]
pub struct HealthResponse {
    /// The entries.
    pub entries: Vec<ServiceEntry>,
    /// `X-Consul-Index`, when present and numeric.
    pub index: Option<u64>,
}

/// The body of `PUT /v1/agent/service/register`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRegistration {
    /// Service name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Service ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Tags.
    #[serde(rename = "Tags", skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Address (empty: the node's).
    #[serde(rename = "Address", skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// Meta.
    #[serde(rename = "Meta", skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Weights.
    #[serde(rename = "Weights")]
    pub weights: ServiceWeights,
    /// The check.
    #[serde(rename = "Check")]
    pub check: CheckDefinition,
}

/// A check definition inside a registration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckDefinition {
    /// Check ID.
    #[serde(rename = "CheckID")]
    pub check_id: String,
    /// Check name.
    #[serde(rename = "Name")]
    pub name: String,
    /// TTL (TTL checks), Go duration.
    #[serde(rename = "TTL", skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// URL (HTTP checks).
    #[serde(rename = "HTTP", skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `host:port` (TCP checks).
    #[serde(rename = "TCP", skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// Probe interval (HTTP/TCP), Go duration.
    #[serde(rename = "Interval", skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Probe timeout (HTTP/TCP), Go duration.
    #[serde(rename = "Timeout", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Initial status.
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `DeregisterCriticalServiceAfter`, Go duration.
    #[serde(rename = "DeregisterCriticalServiceAfter")]
    pub deregister_critical_service_after: String,
}

/// What a TTL heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckPass {
    /// The check was updated.
    Passed,
    /// The agent does not know the check (or it has no TTL any more): register again.
    Unknown,
}
