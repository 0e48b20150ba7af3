//! Walking a JSON document while remembering where we are, so every error names its field.

use std::time::Duration;

use serde_json::{Map, Value};
use tonic::Code;

use super::error::ServiceConfigError;

/// A value and its JSON path (`methodConfig[0].retryPolicy`).
#[derive(Debug, Clone)]
pub(super) struct Field<'a> {
    path: String,
    value: &'a Value,
}

impl<'a> Field<'a> {
    pub(super) fn root(value: &'a Value) -> Self {
        Field {
            path: String::new(),
            value,
        }
    }

    /// The path of `key` under this field (this field's own path for `""`).
    pub(super) fn path(&self, key: &str) -> String {
        match (self.path.is_empty(), key.is_empty()) {
            (_, true) => self.path.clone(),
            (true, false) => key.to_owned(),
            (false, false) => format!("{}.{key}", self.path),
        }
    }

    pub(super) fn child(&self, key: &str, value: &'a Value) -> Field<'a> {
        Field {
            path: self.path(key),
            value,
        }
    }

    /// `map[key]`, when present and not `null` (gRPC treats `null` as absent).
    pub(super) fn get(&self, map: &'a Map<String, Value>, key: &str) -> Option<Field<'a>> {
        map.get(key)
            .filter(|v| !v.is_null())
            .map(|v| self.child(key, v))
    }

    pub(super) fn value(&self) -> &'a Value {
        self.value
    }

    pub(super) fn error(&self, reason: impl Into<String>) -> ServiceConfigError {
        ServiceConfigError::new(self.path.clone(), reason)
    }

    pub(super) fn array(&self) -> Result<Vec<Field<'a>>, ServiceConfigError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.error(format!("must be an array, not {}", kind(self.value))))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Field {
                path: format!("{}[{i}]", self.path),
                value,
            })
            .collect())
    }

    pub(super) fn str(&self) -> Result<String, ServiceConfigError> {
        self.value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.error(format!("must be a string, not {}", kind(self.value))))
    }

    pub(super) fn bool(&self) -> Result<bool, ServiceConfigError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.error(format!("must be true or false, not {}", kind(self.value))))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn object<'a>(field: &Field<'a>) -> Result<&'a Map<String, Value>, ServiceConfigError> {
    field
        .value
        .as_object()
        .ok_or_else(|| field.error(format!("must be an object, not {}", kind(field.value))))
}

/// A protobuf JSON duration: decimal seconds with an `s` suffix (`"1.5s"`, `"0.000340s"`), not
/// negative, at most nine fractional digits, below 10¹⁰ s.
pub(super) fn duration(field: &Field<'_>) -> Result<Duration, ServiceConfigError> {
    let text = field.str()?;
    let bad = || field.error(format!("`{text}` is not a duration like \"1.5s\""));
    let number = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 10 {
        return Err(bad());
    }
    if frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (number.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let secs: u64 = whole.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Duration::new(secs, nanos))
}

/// A status code by name (`"UNAVAILABLE"`, any case) or number (`14`).
pub(super) fn status_code(field: &Field<'_>) -> Result<Code, ServiceConfigError> {
    if let Some(n) = field.value.as_i64() {
        let code = i32::try_from(n)
            .map(Code::from_i32)
            .unwrap_or(Code::Unknown);
        if (0..=16).contains(&n) && code != Code::Ok {
            return Ok(code);
        }
        return Err(field.error(format!("{n} is not a retryable status code (1..=16)")));
    }
    let name = field.str()?;
    let code = match name.to_ascii_uppercase().as_str() {
        "CANCELLED" => Code::Cancelled,
        "UNKNOWN" => Code::Unknown,
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "DEADLINE_EXCEEDED" => Code::DeadlineExceeded,
        "NOT_FOUND" => Code::NotFound,
        "ALREADY_EXISTS" => Code::AlreadyExists,
        "PERMISSION_DENIED" => Code::PermissionDenied,
        "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
        "FAILED_PRECONDITION" => Code::FailedPrecondition,
        "ABORTED" => Code::Aborted,
        "OUT_OF_RANGE" => Code::OutOfRange,
        "UNIMPLEMENTED" => Code::Unimplemented,
        "INTERNAL" => Code::Internal,
        "UNAVAILABLE" => Code::Unavailable,
        "DATA_LOSS" => Code::DataLoss,
        "UNAUTHENTICATED" => Code::Unauthenticated,
        _ => return Err(field.error(format!("`{name}` is not a retryable status code name"))),
    };
    Ok(code)
}
