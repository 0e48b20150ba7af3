//! What a child node of the service path says about one instance.
//!
//! The child's **name** gives the instance id: the registrar creates `<id>-<10-digit sequence>`
//! (`web-1-0000000007` → `web-1`); any other name is the id as it is. The child's **data** is
//! either
//!
//! * a JSON object, [`sdkit_core::instance::json`], the same shape as the etcd backend's values (what the
//!   [`Registrar`](crate::Registrar) writes): `{"addr": "10.0.0.7:8080", "weight": 5, "zone":
//!   "sh001", "tags": ["v1"], "metadata": {"version": "1.2"}}` — only `addr` is required,
//!   `weight` defaults to 1, unknown fields are ignored;
//! * or a plain `host:port` (`10.0.0.7:8080`, `[::1]:8080`), as go-kit and many hand-written
//!   registrations store it.
//!
//! Anything else is a [`ValueError`]; the instancer skips that child with a warning and
//! publishes the rest.
//!
//! ```
//! use sdkit_zookeeper::value::{decode, encode, instance_id};
//! use sdkit_core::Instance;
//!
//! assert_eq!(instance_id("web-1-0000000007"), "web-1");
//! let i = decode("web-1", br#"{"addr":"10.0.0.1:8080","weight":5}"#).unwrap();
//! assert_eq!((i.addr(), i.weight()), ("10.0.0.1:8080", 5));
//! assert_eq!(decode("web-2", b"10.0.0.2:8080").unwrap().addr(), "10.0.0.2:8080");
//! assert!(decode("web-3", b"not an address").is_err());
//! assert_eq!(decode("web-1", &encode(&i)).unwrap(), i);
//! ```

use sdkit_core::Instance;
use sdkit_core::instance::json;

/// Why a child's data was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("zookeeper: data of instance {id:?} rejected: {reason}")]
pub struct ValueError {
    /// The instance id.
    pub id: String,
    /// What was wrong.
    pub reason: String,
}

/// The instance id of child `name`: the name without a trailing `-<10 digits>` sequence.
pub fn instance_id(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((id, seq))
            if !id.is_empty() && seq.len() == 10 && seq.bytes().all(|b| b.is_ascii_digit()) =>
        {
            id
        }
        _ => name,
    }
}

/// Decodes the data of instance `id`. See the [module docs](self).
///
/// # Errors
///
/// [`ValueError`] when the data is neither a JSON object with a valid `addr` nor `host:port`.
pub fn decode(id: &str, data: &[u8]) -> Result<Instance, ValueError> {
    let reject = |reason: String| ValueError {
        id: id.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(data)
        .map_err(|_| reject("not UTF-8".to_owned()))?
        .trim();
    if !text.starts_with('{') {
        json::check_addr(text).map_err(reject)?;
        return Ok(Instance::new(id, text));
    }
    json::decode(id, text).map_err(reject)
}

/// Encodes `instance` as the JSON form (the id is in the node name, not in the data).
pub fn encode(instance: &Instance) -> Vec<u8> {
    json::encode(instance).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_drop_the_sequence_only() {
        assert_eq!(instance_id("web-1-0000000012"), "web-1");
        assert_eq!(instance_id("web-1"), "web-1");
        assert_eq!(instance_id("web-123"), "web-123");
        assert_eq!(instance_id("-0000000012"), "-0000000012");
    }

    #[test]
    fn json_and_plain_forms() {
        let i = decode(
            "a",
            br#"{"addr":"10.0.0.1:1","weight":0,"zone":"z","tags":["t"],"metadata":{"k":"v"},"x":1}"#,
        )
        .unwrap();
        assert_eq!(
            (i.weight(), i.zone(), i.meta("k")),
            (0, Some("z"), Some("v"))
        );
        assert_eq!(i.tags().collect::<Vec<_>>(), ["t"]);
        assert_eq!(decode("a", b" [::1]:80\n").unwrap().addr(), "[::1]:80");
        assert_eq!(decode("a", br#"{"addr":"h:2"}"#).unwrap().weight(), 1);
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            &b""[..],
            b"garbage",
            b"h:",
            b"h:0",
            b"h:70000",
            b":80",
            b"[zz]:80",
            b"a b:80",
            b"{\"addr\":1}",
            b"{\"weight\":1}",
            b"{oops",
            b"\xff\xfe",
        ] {
            let e = decode("x", bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("zookeeper: data of instance \"x\""),
                "{e}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn encode_round_trips(weight in 0u32..1000, port in 1u16.., zone in "[a-z]{0,5}", tag in "[a-z]{1,5}") {
            let mut i = Instance::new("id", format!("10.1.2.3:{port}")).with_weight(weight).with_tag(&tag).with_meta("k", &tag);
            if !zone.is_empty() {
                i = i.with_zone(&zone);
            }
            proptest::prop_assert_eq!(decode("id", &encode(&i)).unwrap(), i);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode("x", &data);
        }
    }
}
