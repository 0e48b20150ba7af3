//! The reply envelope `{code, message, ttl, data}` (and `error` in `polls`).
//!
//! The reference writes three shapes, all with HTTP 200:
//! * `{"code":0,"message":"0","ttl":1,"data":…}` — most replies; `data` is omitted when the
//!   handler passes nothing ([`Data::Absent`]) and `null` for a typed nil ([`Data::Null`]);
//! * `{"code":…,"message":"…","data":…,"error":{"-404":[…]}}` — `polls` success, no `ttl`;
//! * `{"code":-404,"message":"<appid> not found"}` — `poll` of an unknown app, no `ttl`.

use crate::Code;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `data` member: absent, `null`, or a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Data<T> {
    /// The key is not written.
    #[default]
    Absent,
    /// `"data": null`.
    Null,
    /// `"data": <value>`.
    Value(T),
}

impl<T> Data<T> {
    /// Whether the key is absent.
    pub fn is_absent(&self) -> bool {
        matches!(self, Data::Absent)
    }

    /// The value, if any.
    pub fn value(&self) -> Option<&T> {
        match self {
            Data::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The value, if any, by value.
    pub fn into_value(self) -> Option<T> {
        match self {
            Data::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<T: Serialize> Serialize for Data<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Value(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Data<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Data::Null, Data::Value))
    }
}

/// The `error` member of a `polls` reply: the requested appids that do not exist.
///
/// Always present in a `polls` success; `{"-404":null}` when nothing is missing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Misses {
    /// Appids not found in the requested env (and zone).
    #[serde(rename = "-404", default)]
    pub not_found: Option<Vec<String>>,
}

impl Misses {
    /// A miss list; an empty list is written as `null`, as the reference does.
    pub fn new(not_found: Vec<String>) -> Misses {
        Misses {
            not_found: if not_found.is_empty() {
                None
            } else {
                Some(not_found)
            },
        }
    }

    /// The missing appids (empty when none).
    pub fn appids(&self) -> &[String] {
        self.not_found.as_deref().unwrap_or_default()
    }
}

/// A reply envelope.
///
/// ```
/// use sdkit_discovery_proto::{Code, Reply};
/// let r: Reply<()> = Reply::code(Code::NOT_MODIFIED);
/// assert_eq!(r.to_json(), r#"{"code":-304,"message":"-304","ttl":1}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply<T> {
    /// The outcome.
    pub code: Code,
    /// The decimal code, or a human-readable text for -400 and some -404.
    #[serde(default)]
    pub message: String,
    /// Always 1 when present; absent in `polls` successes and `poll` not-found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// The payload.
    #[serde(default = "Data::default", skip_serializing_if = "Data::is_absent")]
    pub data: Data<T>,
    /// `polls` only: the missing appids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Misses>,
}

impl<T> Reply<T> {
    /// `{"code":0,"message":"0","ttl":1,"data":value}`.
    pub fn ok(value: T) -> Reply<T> {
        Reply::code(Code::OK).with_data(Data::Value(value))
    }

    /// `{"code":c,"message":"c","ttl":1}`, no `data`.
    pub fn code(code: Code) -> Reply<T> {
        Reply {
            code,
            message: code.message(),
            ttl: Some(1),
            data: Data::Absent,
            error: None,
        }
    }

    /// `{"code":c,"message":text,"ttl":1}`, e.g. a -400 naming the bad field.
    pub fn error(code: Code, message: impl Into<String>) -> Reply<T> {
        Reply {
            message: message.into(),
            ..Reply::code(code)
        }
    }

    /// The `polls` success shape: no `ttl`, `data` and `error` always present.
    pub fn polls(data: T, misses: Misses) -> Reply<T> {
        Reply {
            code: Code::OK,
            message: Code::OK.message(),
            ttl: None,
            data: Data::Value(data),
            error: Some(misses),
        }
    }

    /// Replaces `data`.
    pub fn with_data(self, data: Data<T>) -> Reply<T> {
        Reply { data, ..self }
    }

    /// Removes `ttl` (the reference's `JSONMap` shape).
    pub fn without_ttl(self) -> Reply<T> {
        Reply { ttl: None, ..self }
    }
}

impl<T: Serialize> Reply<T> {
    /// Serialises to a JSON string.
    pub fn to_json(&self) -> String {
        // A Reply is a tree of strings, integers and string maps: serialisation cannot fail.
        serde_json::to_string(self)
            .unwrap_or_else(|_| String::from(r#"{"code":-500,"message":"-500","ttl":1}"#))
    }

    /// Serialises to JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|_| br#"{"code":-500,"message":"-500","ttl":1}"#.to_vec())
    }
}

/// Why a reply body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is larger than the caller's bound.
    #[error("reply body of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The body is not a valid envelope.
    #[error("malformed discovery reply: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a reply body no longer than `max_len` bytes.
///
/// An empty body (the reference's answer to `register` with `status > 2`) is an error.
pub fn decode_reply<T: DeserializeOwned>(
    body: &[u8],
    max_len: usize,
) -> Result<Reply<T>, DecodeError> {
    if body.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: body.len(),
            max: max_len,
        });
    }
    Ok(serde_json::from_slice(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn shapes() {
        assert_eq!(
            Reply::<()>::code(Code::OK).to_json(),
            r#"{"code":0,"message":"0","ttl":1}"#
        );
        assert_eq!(
            Reply::<()>::code(Code::NOTHING_FOUND)
                .with_data(Data::Null)
                .to_json(),
            r#"{"code":-404,"message":"-404","ttl":1,"data":null}"#
        );
        let polls = Reply::polls(BTreeMap::<String, i64>::new(), Misses::new(vec![]));
        assert_eq!(
            polls.to_json(),
            r#"{"code":0,"message":"0","data":{},"error":{"-404":null}}"#
        );
        let polls = Reply::polls(
            BTreeMap::<String, i64>::new(),
            Misses::new(vec!["x".into()]),
        );
        assert_eq!(
            polls.to_json(),
            r#"{"code":0,"message":"0","data":{},"error":{"-404":["x"]}}"#
        );
    }

    #[test]
    fn decode_distinguishes_null_and_absent() {
        let r: Reply<i64> = decode_reply(
            br#"{"code":-404,"message":"-404","ttl":1,"data":null}"#,
            100,
        )
        .unwrap();
        assert_eq!(r.data, Data::Null);
        let r: Reply<i64> = decode_reply(br#"{"code":0,"message":"0","ttl":1}"#, 100).unwrap();
        assert_eq!(r.data, Data::Absent);
        assert!(matches!(
            decode_reply::<i64>(b"{}", 1),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(decode_reply::<i64>(b"", 10).is_err());
    }
}
