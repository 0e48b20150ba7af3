//! Errors of the facade.

use std::fmt;

use sdkit_core::BoxError;

/// A registry URL that could not be used: names the part that is wrong and shows the expected
/// form. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    part: String,
    message: String,
    expected: Option<&'static str>,
}

impl TargetError {
    pub(crate) fn new(part: impl Into<String>, message: impl Into<String>) -> Self {
        TargetError {
            part: part.into(),
            message: message.into(),
            expected: None,
        }
    }

    pub(crate) fn expected(mut self, form: &'static str) -> Self {
        self.expected = Some(form);
        self
    }

    /// The part of the URL that is wrong (`scheme`, `host`, `path`, `query`, or an option name).
    pub fn part(&self) -> &str {
        &self.part
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid target: {}: {}", self.part, self.message)?;
        if let Some(form) = self.expected {
            write!(f, "; expected {form}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TargetError {}

/// Why a [`Target`](crate::Target) could not build an instancer or a registrar.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is malformed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The scheme cannot do this (a DNS SRV or static target has no registrar).
    #[error("{scheme}:// targets cannot {what}")]
    Unsupported {
        /// The URL scheme.
        scheme: &'static str,
        /// What was asked.
        what: &'static str,
    },
    /// The backend refused its configuration.
    #[error("{scheme}: {source}")]
    Backend {
        /// The URL scheme.
        scheme: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    pub(crate) fn backend(scheme: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            scheme,
            source: source.into(),
        }
    }
}
