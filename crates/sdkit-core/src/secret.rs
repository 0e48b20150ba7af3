//! Secrets: tokens and passwords that never show up in `Debug`, `Display`, logs or CLI output.
//!
//! Every backend holds its credentials in a [`Secret`]. Formatting it prints `***` whatever it
//! contains; the value is reached only through [`Secret::expose`], at the one place it goes on
//! the wire.
//!
//! ```
//! use sdkit_core::Secret;
//!
//! let token = Secret::new("s3cr3t/with?odd@chars");
//! assert_eq!(token.to_string(), "***");
//! assert_eq!(format!("{token:?}"), "Secret(<redacted>)");
//! assert_eq!(token.expose(), "s3cr3t/with?odd@chars");
//! ```

use std::fmt;

use serde::Deserialize;

/// A token or password whose `Debug` and `Display` print `***`. See the [module docs](self).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `true` when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_the_value() {
        for value in ["", "hunter2", "a/b?c@d#e%f g", "***", "\u{1F511}"] {
            let secret = Secret::new(value);
            assert_eq!(format!("{secret}"), "***");
            assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
            assert_eq!(format!("{secret:#?}"), "Secret(<redacted>)");
            assert_eq!(secret.expose(), value);
        }
        let secret: Secret = serde_json::from_str(r#""from-json""#).unwrap();
        assert_eq!(secret.expose(), "from-json");
    }
}
