//! The value schema: what an etcd value under the service prefix says about one instance.
//!
//! Two forms are accepted; the instance's identity is always the key below the prefix
//! (`/services/web/web-1` → `web-1`):
//!
//! * a JSON object ([`sdkit_core::instance::json`], what the [`Registrar`](crate::Registrar) writes):
//!   `{"addr": "10.0.0.1:8080", "weight": 5, "zone": "sh001", "tags": ["v1"],
//!   "metadata": {"version": "1.2"}}` — only `addr` is required; `weight` defaults to 1;
//!   unknown fields are ignored;
//! * a plain address, as go-kit's etcd registrar writes it: `10.0.0.1:8080`, `[::1]:8080`, or
//!   a URL `http://10.0.0.1:8080` (the scheme is kept as metadata `scheme`, a path is dropped).
//!
//! Anything else is rejected with a [`ValueError`]; the instancer skips that key with a warning
//! and publishes the rest.
//!
//! ```
//! use sdkit_etcd::value::{decode, encode};
//! use sdkit_core::Instance;
//!
//! let i = decode("web-1", br#"{"addr":"10.0.0.1:8080","weight":5,"tags":["v1"]}"#).unwrap();
//! assert_eq!((i.addr(), i.weight()), ("10.0.0.1:8080", 5));
//! assert_eq!(decode("web-2", b"10.0.0.2:8080").unwrap().addr(), "10.0.0.2:8080");
//! assert!(decode("web-3", b"not an address").is_err());
//!
//! let back = decode("web-1", encode(&i).as_bytes()).unwrap();
//! assert_eq!(back, i);
//! ```

use sdkit_core::Instance;
use sdkit_core::instance::json;

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("etcd: value of instance {id:?} rejected: {reason}")]
pub struct ValueError {
    /// The instance id (the key below the prefix).
    pub id: String,
    /// What was wrong.
    pub reason: String,
}

/// Decodes the value of instance `id`. See the [module docs](self).
///
/// # Errors
///
/// [`ValueError`] when the value is neither a valid JSON object nor a plain address.
pub fn decode(id: &str, value: &[u8]) -> Result<Instance, ValueError> {
    let err = |reason: String| ValueError {
        id: id.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(value).map_err(|_| err("not UTF-8".to_owned()))?;
    let text = text.trim();
    if text.starts_with('{') {
        return json::decode(id, text).map_err(err);
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, text),
    };
    if let Some(scheme) = scheme
        && (scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    {
        return Err(err(format!("bad URL scheme {scheme:?}")));
    }
    let addr = rest.split('/').next().unwrap_or_default();
    json::check_addr(addr).map_err(err)?;
    let mut instance = Instance::new(id, addr);
    if let Some(scheme) = scheme {
        instance = instance.with_meta("scheme", scheme);
    }
    Ok(instance)
}

/// Encodes `instance` in the JSON form (the id is not part of the value: it is the key).
pub fn encode(instance: &Instance) -> String {
    json::encode(instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_forms() {
        assert_eq!(decode("a", b"127.0.0.1:80").unwrap().addr(), "127.0.0.1:80");
        assert_eq!(
            decode("a", b" host.example:80\n").unwrap().addr(),
            "host.example:80"
        );
        assert_eq!(decode("a", b"[::1]:80").unwrap().addr(), "[::1]:80");
        let u = decode("a", b"http://10.0.0.1:8080/x").unwrap();
        assert_eq!(u.addr(), "10.0.0.1:8080");
        assert_eq!(u.meta("scheme"), Some("http"));
    }

    #[test]
    fn json_form() {
        let i = decode(
            "a",
            br#"{"addr":"10.0.0.1:1","weight":0,"zone":"z","tags":["t"],"metadata":{"k":"v"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(i.weight(), 0);
        assert_eq!(i.zone(), Some("z"));
        assert_eq!(i.tags().collect::<Vec<_>>(), ["t"]);
        assert_eq!(i.meta("k"), Some("v"));
        assert_eq!(decode("a", br#"{"addr":"h:2"}"#).unwrap().weight(), 1);
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        for bad in [
            &b""[..],
            b"garbage",
            b"host:",
            b"host:99999",
            b"host:0",
            b":80",
            b"::1:80",
            b"[zz]:80",
            b"{\"addr\":1}",
            b"{\"weight\":1}",
            b"{not json",
            b"\xff\xfe",
            b"ht tp://h:1",
            b"a b:80",
        ] {
            let e = decode("x", bad).unwrap_err();
            assert!(
                e.to_string().starts_with("etcd: value of instance \"x\""),
                "{e}"
            );
        }
    }

    #[test]
    fn encode_round_trips() {
        let i = Instance::new("id", "[::1]:9")
            .with_weight(7)
            .with_zone("z")
            .with_tag("a")
            .with_meta("k", "v");
        assert_eq!(decode("id", encode(&i).as_bytes()).unwrap(), i);
    }
}
