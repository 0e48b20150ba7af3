//! The error of a malformed service config: which field, and what was wrong with it.

/// A malformed service config: which field, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service config: {field}: {reason}")]
pub struct ServiceConfigError {
    field: String,
    reason: String,
}

impl ServiceConfigError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ServiceConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The JSON path of the offending field, e.g. `methodConfig[0].retryPolicy.maxAttempts`
    /// (empty for the document itself).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What was wrong.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
