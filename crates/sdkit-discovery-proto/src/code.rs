//! Reply codes of the discovery API (kratos `ecode` values).
//!
//! The HTTP status is 200 for every application-level result; the outcome is the envelope's
//! `code`. `message` is the decimal code as a string unless a handler supplies a text.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An application-level reply code, e.g. [`Code::OK`] or [`Code::NOT_MODIFIED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Code(pub i32);

impl Code {
    /// 0: success.
    pub const OK: Code = Code(0);
    /// -304: a long poll ended without a change (hold elapsed, deadline, or shutdown).
    pub const NOT_MODIFIED: Code = Code(-304);
    /// -400: a request argument is missing or malformed; the message names the field.
    pub const REQUEST_ERR: Code = Code(-400);
    /// -404: the app, zone or instance does not exist.
    pub const NOTHING_FOUND: Code = Code(-404);
    /// -409: replication conflict, the receiver holds a newer instance (in `data`).
    pub const CONFLICT: Code = Code(-409);
    /// -500: server error; the reference also uses it for protect mode on reads.
    pub const SERVER_ERR: Code = Code(-500);
    /// -509: a capacity limit was reached (instances, apps, parked polls). Not produced by the
    /// reference server, which has no limits; declared in kratos `ecode` as `LimitExceed`.
    pub const LIMIT_EXCEED: Code = Code(-509);

    /// Whether this is [`Code::OK`].
    pub fn is_ok(self) -> bool {
        self == Code::OK
    }

    /// The default `message`: the decimal code, as the reference server writes it.
    pub fn message(self) -> String {
        self.0.to_string()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
