//! The endpoints: the blocking health query, the agent's register/deregister/check calls, and
//! the JSON written from Consul's documentation.

use super::*;

pub(crate) async fn health_service(
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
            .filter(|c| c.node == service.node.name && c.service_id == service.id)
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

pub(crate) fn string_list(items: &[String]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items.iter().map(|t| Value::String(t.clone())).collect())
    }
}

pub(crate) fn string_map(items: &BTreeMap<String, String>) -> Value {
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
pub(crate) fn entry_json(s: &Service, checks: &[&Check]) -> Value {
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

pub(crate) fn agent_service_json(s: &Service) -> Value {
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
pub(crate) fn register(shared: &Shared, body: &[u8], replace_checks: bool) -> Resp {
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
            node: LOCAL_NODE.to_string(),
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

    // The agent registers on its own node.
    let service_key = key(LOCAL_NODE, &id);
    let create_index = state
        .services
        .get(&service_key)
        .map(|s| s.create_index)
        .unwrap_or(index);
    if replace_checks {
        state
            .checks
            .retain(|_, c| !(c.node == LOCAL_NODE && c.service_id == id));
    }
    for check in checks {
        state.checks.insert(key(LOCAL_NODE, &check.id), check);
    }
    if let Some(old) = state.services.get(&service_key)
        && old.name != name
    {
        let old_name = old.name.clone();
        state.bump(&old_name);
    }
    state.services.insert(
        service_key,
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
