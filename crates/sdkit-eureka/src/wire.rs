//! Eureka's JSON, both ways: reading `GET /apps/{APP}` and `GET /apps/delta`, writing the
//! registration body of `POST /apps/{APP}`.
//!
//! Eureka's JSON comes from its XML model, so it is lenient on what it reads:
//!
//! * `application.instance` (and `applications.application`) is an array, or a single object
//!   when there is one element (older servers);
//! * `port` / `securePort` are `{"$": 8080, "@enabled": "true"}` with the number or the flag as
//!   a number, a string or a bool;
//! * `metadata` is an object of strings, possibly with an `@class` entry (dropped).
//!
//! Mapping onto an [`Instance`]: id = `instanceId` (else `hostName:app:port`); address =
//! `ipAddr` (else `hostName`) with `port.$` when `port.@enabled`, else `securePort.$` when
//! enabled (metadata `scheme` = `https`); weight = metadata `weight` (default 1); zone =
//! metadata `zone`; every other metadata entry is kept. An instance without an address or an
//! enabled port is skipped with a warning.

use sdkit_core::Instance;
use sdkit_core::instance::join_host_port;
use serde_json::{Map, Value, json};

/// One instance as read: its status, the delta action, and the mapped instance (if usable).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `instanceId` (or the synthesised id).
    pub id: String,
    /// `status` (`UP`, `DOWN`, `STARTING`, `OUT_OF_SERVICE`, `UNKNOWN`).
    pub status: String,
    /// `actionType` (`ADDED`, `MODIFIED`, `DELETED`), upper case, when present.
    pub action: Option<String>,
    /// The mapped instance, or why it was skipped.
    pub instance: Result<Instance, String>,
}

/// Either an array or a single object, as a list.
fn one_or_many(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `{"$": port, "@enabled": flag}` → the port, when enabled and in range.
fn enabled_port(value: Option<&Value>) -> Option<u16> {
    let object = value?.as_object()?;
    let enabled = match object.get("@enabled") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        None => true,
        _ => false,
    };
    let port = match object.get("$")? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    enabled.then_some(port)
}

/// Maps one `instance` object.
fn entry(value: &Value) -> Option<Entry> {
    let object = value.as_object()?;
    let host = text(object, "ipAddr").or_else(|| text(object, "hostName"));
    let (port, secure) = match enabled_port(object.get("port")) {
        Some(port) => (Some(port), false),
        None => (enabled_port(object.get("securePort")), true),
    };
    let app = text(object, "app").unwrap_or_default();
    let id = text(object, "instanceId")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{}:{}:{}",
                text(object, "hostName").unwrap_or_default(),
                app.to_ascii_lowercase(),
                port.unwrap_or(0)
            )
        });
    let status = text(object, "status")
        .unwrap_or("UNKNOWN")
        .to_ascii_uppercase();
    let action = text(object, "actionType").map(str::to_ascii_uppercase);
    // The metadata's string entries, read in place (`@class` and the like dropped).
    let metadata = object
        .get("metadata")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with('@'))
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)));
    let instance = match (host, port) {
        (None, _) => Err("no ipAddr or hostName".to_owned()),
        (_, None) => Err("no enabled port or securePort".to_owned()),
        (Some(host), Some(port)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let mut instance = Instance::new(&id, join_host_port(host, port));
            // The rest of the metadata in one go (sorted once, whatever its size).
            let mut rest = Vec::new();
            for (k, v) in metadata {
                match k {
                    "weight" => match v.parse() {
                        Ok(w) => instance = instance.with_weight(w),
                        Err(_) => rest.push((k, v)),
                    },
                    "zone" if !v.is_empty() => instance = instance.with_zone(v),
                    _ => rest.push((k, v)),
                }
            }
            if secure {
                rest.push(("scheme", "https"));
            }
            Ok(instance.with_metadata(rest))
        }
    };
    Some(Entry {
        id,
        status,
        action,
        instance,
    })
}

/// Parses the body of `GET /apps/{APP}`.
///
/// # Errors
///
/// When the body is not JSON or has no `application` object.
pub fn parse_application(body: &[u8]) -> Result<Vec<Entry>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let application = value
        .get("application")
        .filter(|a| a.is_object())
        .ok_or("no `application` object")?;
    Ok(one_or_many(application.get("instance"))
        .into_iter()
        .filter_map(entry)
        .collect())
}

/// Parses the body of `GET /apps/delta`, keeping the instances of application `app`.
///
/// # Errors
///
/// When the body is not JSON or has no `applications` object.
pub fn parse_delta(body: &[u8], app: &str) -> Result<Vec<Entry>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let applications = value
        .get("applications")
        .filter(|a| a.is_object())
        .ok_or("no `applications` object")?;
    Ok(one_or_many(applications.get("application"))
        .into_iter()
        .filter(|a| {
            a.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(app))
        })
        .flat_map(|a| one_or_many(a.get("instance")))
        .filter_map(entry)
        .collect())
}

/// The registration body of `instance` in application `app` (`POST /apps/{APP}`).
pub fn registration(
    app: &str,
    instance: &Instance,
    host: &str,
    port: u16,
    lease_secs: u64,
    renew_secs: u64,
) -> Value {
    let mut metadata = Map::new();
    for (k, v) in instance.metadata() {
        metadata.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    metadata.insert(
        "weight".into(),
        Value::String(instance.weight().to_string()),
    );
    if let Some(zone) = instance.zone() {
        metadata.insert("zone".into(), Value::String(zone.to_owned()));
    }
    let vip = app.to_ascii_lowercase();
    json!({
        "instance": {
            "instanceId": instance.id(),
            "hostName": host,
            "app": app,
            "ipAddr": host,
            "vipAddress": vip,
            "secureVipAddress": vip,
            "status": "UP",
            "port": {"$": port, "@enabled": "true"},
            "securePort": {"$": 443, "@enabled": "false"},
            "dataCenterInfo": {
                "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                "name": "MyOwn"
            },
            "leaseInfo": {"renewalIntervalInSecs": renew_secs, "durationInSecs": lease_secs},
            "metadata": metadata
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_shapes() {
        let body = br#"{"application":{"name":"WEB","instance":{"instanceId":"a","app":"WEB",
            "ipAddr":"10.0.0.1","status":"UP","port":{"$":"8080","@enabled":true},
            "metadata":{"@class":"java.util.Collections$EmptyMap"}}}}"#;
        let entries = parse_application(body).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].instance.as_ref().unwrap().addr(),
            "10.0.0.1:8080"
        );
        assert_eq!(entries[0].instance.as_ref().unwrap().metadata().count(), 0);
    }

    #[test]
    fn secure_port_weight_zone_and_skips() {
        let body = br#"{"application":{"name":"WEB","instance":[
            {"instanceId":"s","hostName":"h","status":"DOWN","port":{"$":80,"@enabled":"false"},
             "securePort":{"$":8443,"@enabled":"true"},"metadata":{"weight":"7","zone":"z1","k":"v"}},
            {"instanceId":"noport","ipAddr":"10.0.0.2","port":{"$":80,"@enabled":"false"}},
            {"instanceId":"nohost","port":{"$":80,"@enabled":"true"}},
            {"instanceId":"v6","ipAddr":"::1","port":{"$":81,"@enabled":"true"}},
            "garbage"]}}"#;
        let entries = parse_application(body).unwrap();
        assert_eq!(entries.len(), 4);
        let s = entries[0].instance.as_ref().unwrap();
        assert_eq!((s.addr(), s.weight(), s.zone()), ("h:8443", 7, Some("z1")));
        assert_eq!((s.meta("scheme"), s.meta("k")), (Some("https"), Some("v")));
        assert_eq!(entries[0].status, "DOWN");
        assert!(entries[1].instance.is_err() && entries[2].instance.is_err());
        assert_eq!(entries[3].instance.as_ref().unwrap().addr(), "[::1]:81");
    }

    #[test]
    fn an_instance_with_a_huge_metadata_map_decodes_whole() {
        // A hostile or careless server: 50 000 entries on one instance (under 2 MB of JSON).
        let entries: Vec<String> = (0..50_000).map(|i| format!("\"k{i:05}\":\"v\"")).collect();
        let body = format!(
            r#"{{"application":{{"name":"WEB","instance":{{"instanceId":"a","ipAddr":"10.0.0.1",
            "status":"UP","port":{{"$":8080,"@enabled":true}},"metadata":{{{}}}}}}}}}"#,
            entries.join(",")
        );
        let parsed = parse_application(body.as_bytes()).unwrap();
        let instance = parsed[0].instance.as_ref().unwrap();
        assert_eq!(instance.metadata().len(), 50_000);
        assert_eq!(instance.meta("k49999"), Some("v"));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for bad in [&b"nope"[..], b"{}", b"{\"application\":[]}", b"[]"] {
            assert!(parse_application(bad).is_err());
        }
        assert!(parse_delta(b"{}", "WEB").is_err());
    }

    #[test]
    fn registration_round_trips_through_the_reader() {
        let i = Instance::new("web-1", "10.0.0.7:8080")
            .with_weight(3)
            .with_zone("z")
            .with_meta("k", "v");
        let body = registration("WEB", &i, "10.0.0.7", 8080, 90, 30);
        let wrapped =
            json!({"application": {"name": "WEB", "instance": [body["instance"].clone()]}});
        let entries = parse_application(wrapped.to_string().as_bytes()).unwrap();
        assert_eq!(entries[0].instance.as_ref().unwrap(), &i);
        assert_eq!(entries[0].status, "UP");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_json(s in ".{0,200}") {
            let _ = parse_application(s.as_bytes());
            let _ = parse_delta(s.as_bytes(), "WEB");
        }
    }
}
