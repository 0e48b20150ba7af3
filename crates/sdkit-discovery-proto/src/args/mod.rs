//! Typed request arguments, one struct per endpoint.
//!
//! Each struct has `to_form` (what a client sends) and `from_form` (what a server accepts),
//! so both sides agree on names, repetition and validation. `from_form` follows the
//! reference's binding rules and adds bounds:
//!
//! * a scalar takes the first value of its key; a list takes every non-empty value;
//! * `required` strings must be non-empty, `status` must be non-zero;
//! * an integer that does not parse is an error, an empty one is 0;
//! * a bool that does not parse is ignored (false), as Go's binder does;
//! * every length is bounded by [`FieldLimits`]; errors name the field ([`ArgError::field`]).

mod read;
mod write;

pub use read::{FetchArgs, FetchsArgs, PollsArgs};
pub use write::{CancelArgs, RegisterArgs, RenewArgs, SetArgs};

use crate::{Form, FormError};

/// Upper bounds on request fields, applied by every `from_form`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLimits {
    /// Longest `appid`, in bytes (default 128).
    pub max_appid_len: usize,
    /// Longest `hostname` (default 255).
    pub max_hostname_len: usize,
    /// Longest `zone`, `env` and `region` (default 64).
    pub max_label_len: usize,
    /// Longest `version` (default 128).
    pub max_version_len: usize,
    /// Most `addrs` per instance, after splitting (default 16).
    pub max_addrs: usize,
    /// Longest address (default 512).
    pub max_addr_len: usize,
    /// Longest `metadata` JSON string (default 4096).
    pub max_metadata_len: usize,
    /// Most `appid` values in `fetchs`/`polls` (default 256).
    pub max_appids: usize,
    /// Most `hostname` values in `set` (default 256).
    pub max_hostnames: usize,
    /// Most form pairs in one request (default 2048).
    pub max_pairs: usize,
}

impl Default for FieldLimits {
    fn default() -> Self {
        FieldLimits {
            max_appid_len: 128,
            max_hostname_len: 255,
            max_label_len: 64,
            max_version_len: 128,
            max_addrs: 16,
            max_addr_len: 512,
            max_metadata_len: 4096,
            max_appids: 256,
            max_hostnames: 256,
            max_pairs: 2048,
        }
    }
}

/// A request argument that was missing, malformed or out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// A required field is absent or empty.
    #[error("{field} is required")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A value is longer than allowed.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The bound.
        max: usize,
    },
    /// A list has more values than allowed.
    #[error("too many {field} values (at most {max})")]
    TooMany {
        /// The field.
        field: &'static str,
        /// The bound.
        max: usize,
    },
    /// An integer did not parse.
    #[error("{field}: invalid integer {value:?}")]
    InvalidInt {
        /// The field.
        field: &'static str,
        /// The offending text (truncated).
        value: String,
    },
    /// A status other than 1 (UP) or 2 (WAITING).
    #[error("{field}: status must be 1 (UP) or 2 (WAITING), got {value}")]
    InvalidStatus {
        /// The field.
        field: &'static str,
        /// The offending value.
        value: i64,
    },
    /// `metadata` is not a JSON object.
    #[error("{field}: {reason}")]
    InvalidMetadata {
        /// The field.
        field: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
    /// Two parallel lists differ in length.
    #[error("{field} has {len} values but {other} has {other_len}")]
    LengthMismatch {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The list it must pair with.
        other: &'static str,
        /// That list's length.
        other_len: usize,
    },
    /// The form itself is malformed.
    #[error("malformed form: {0}")]
    Form(#[from] FormError),
}

impl ArgError {
    /// The name of the offending field (`"form"` for a malformed form).
    pub fn field(&self) -> &str {
        match self {
            ArgError::Missing { field }
            | ArgError::TooLong { field, .. }
            | ArgError::TooMany { field, .. }
            | ArgError::InvalidInt { field, .. }
            | ArgError::InvalidStatus { field, .. }
            | ArgError::InvalidMetadata { field, .. }
            | ArgError::LengthMismatch { field, .. } => field,
            ArgError::Form(_) => "form",
        }
    }
}

/// Reads one form with the limits at hand; shared helpers of the `from_form`s.
pub(crate) struct Reader<'a> {
    pub(crate) form: &'a Form,
    pub(crate) limits: &'a FieldLimits,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(form: &'a Form, limits: &'a FieldLimits) -> Result<Self, ArgError> {
        if form.len() > limits.max_pairs {
            return Err(FormError::TooManyPairs {
                max: limits.max_pairs,
            }
            .into());
        }
        Ok(Reader { form, limits })
    }

    /// Optional string, bounded.
    pub(crate) fn string(&self, field: &'static str, max: usize) -> Result<String, ArgError> {
        let value = self.form.get(field).unwrap_or_default();
        if value.len() > max {
            return Err(ArgError::TooLong { field, max });
        }
        Ok(value.to_owned())
    }

    /// Required (non-empty) string, bounded.
    pub(crate) fn required(&self, field: &'static str, max: usize) -> Result<String, ArgError> {
        let value = self.string(field, max)?;
        if value.is_empty() {
            return Err(ArgError::Missing { field });
        }
        Ok(value)
    }

    pub(crate) fn zone(&self) -> Result<String, ArgError> {
        self.required("zone", self.limits.max_label_len)
    }

    pub(crate) fn env(&self) -> Result<String, ArgError> {
        self.required("env", self.limits.max_label_len)
    }

    pub(crate) fn appid(&self) -> Result<String, ArgError> {
        self.required("appid", self.limits.max_appid_len)
    }

    pub(crate) fn hostname(&self) -> Result<String, ArgError> {
        self.required("hostname", self.limits.max_hostname_len)
    }

    /// Every non-empty value of a list field, each bounded, at most `max_count`.
    pub(crate) fn list(
        &self,
        field: &'static str,
        max_len: usize,
        max_count: usize,
    ) -> Result<Vec<String>, ArgError> {
        let mut out = Vec::new();
        for value in self.form.get_all(field).filter(|v| !v.is_empty()) {
            if out.len() >= max_count {
                return Err(ArgError::TooMany {
                    field,
                    max: max_count,
                });
            }
            if value.len() > max_len {
                return Err(ArgError::TooLong {
                    field,
                    max: max_len,
                });
            }
            out.push(value.to_owned());
        }
        Ok(out)
    }

    /// Optional i64; empty is 0.
    pub(crate) fn i64(&self, field: &'static str) -> Result<i64, ArgError> {
        parse_i64(field, self.form.get(field).unwrap_or_default())
    }

    /// Every non-empty value of an i64 list, at most `max_count`.
    pub(crate) fn i64_list(
        &self,
        field: &'static str,
        max_count: usize,
    ) -> Result<Vec<i64>, ArgError> {
        let mut out = Vec::new();
        for value in self.form.get_all(field).filter(|v| !v.is_empty()) {
            if out.len() >= max_count {
                return Err(ArgError::TooMany {
                    field,
                    max: max_count,
                });
            }
            out.push(parse_i64(field, value)?);
        }
        Ok(out)
    }

    /// Optional u32; empty is 0.
    pub(crate) fn u32(&self, field: &'static str) -> Result<u32, ArgError> {
        let value = self.form.get(field).unwrap_or_default().trim();
        if value.is_empty() {
            return Ok(0);
        }
        value.parse().map_err(|_| invalid_int(field, value))
    }

    /// Optional bool, Go `strconv.ParseBool` spellings; anything else is false.
    pub(crate) fn bool(&self, field: &'static str) -> bool {
        matches!(
            self.form.get(field),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }
}

fn invalid_int(field: &'static str, value: &str) -> ArgError {
    let shown: String = value.chars().take(32).collect();
    ArgError::InvalidInt {
        field,
        value: shown,
    }
}

fn parse_i64(field: &'static str, value: &str) -> Result<i64, ArgError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(0);
    }
    value.parse().map_err(|_| invalid_int(field, value))
}
