//! The bearer token that guards writes (and optionally reads), redacted everywhere.

use std::fmt;

/// A bearer token. Its `Debug` and `Display` never show the value; comparison takes the
/// same time wherever the first difference is.
///
/// ```
/// use sdkit_discovery_server::Token;
/// let token = Token::new("s3cret");
/// assert_eq!(format!("{token:?} {token}"), "Token(<redacted>) <redacted>");
/// assert!(token.matches("s3cret"));
/// assert!(!token.matches("s3cres"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token with this value.
    pub fn new(value: impl Into<String>) -> Token {
        Token(value.into())
    }

    /// Whether `presented` equals the token (constant time for equal lengths).
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether the token is empty (an empty token is refused by the builder).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
