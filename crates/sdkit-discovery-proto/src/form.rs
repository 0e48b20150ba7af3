//! `application/x-www-form-urlencoded` forms with repeated keys.
//!
//! The reference binds parameters with Go's `req.ParseForm()`: the urlencoded body and the
//! query string are merged (body first), keys may repeat (`appid=a&appid=b`), `+` is a space,
//! and a bad `%` escape is an error. [`Form`] keeps every pair in order.

use std::fmt;

/// An ordered multimap of form parameters.
///
/// ```
/// use sdkit_discovery_proto::Form;
/// let mut form = Form::parse(b"appid=a&appid=b&env=dev", 100).unwrap();
/// assert_eq!(form.get_all("appid").collect::<Vec<_>>(), ["a", "b"]);
/// form.append("note", "x y&z");
/// assert_eq!(form.encode(), "appid=a&appid=b&env=dev&note=x+y%26z");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

/// Why a form could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    #[error("parameter {key:?}: invalid %-escape")]
    InvalidEscape {
        /// The (raw, truncated) key of the offending pair.
        key: String,
    },
    /// The decoded bytes are not UTF-8.
    #[error("parameter {key:?}: not valid UTF-8")]
    InvalidUtf8 {
        /// The (raw, truncated) key of the offending pair.
        key: String,
    },
    /// More pairs than allowed.
    #[error("too many parameters (at most {max})")]
    TooManyPairs {
        /// The bound.
        max: usize,
    },
}

impl Form {
    /// An empty form.
    pub fn new() -> Form {
        Form::default()
    }

    /// Parses `input`, allowing at most `max_pairs` pairs.
    pub fn parse(input: &[u8], max_pairs: usize) -> Result<Form, FormError> {
        let mut form = Form::new();
        form.parse_into(input, max_pairs)?;
        Ok(form)
    }

    /// Parses `input` and appends its pairs; the total stays at most `max_pairs`.
    pub fn parse_into(&mut self, input: &[u8], max_pairs: usize) -> Result<(), FormError> {
        for piece in input.split(|&b| b == b'&') {
            if piece.is_empty() {
                continue;
            }
            if self.pairs.len() >= max_pairs {
                return Err(FormError::TooManyPairs { max: max_pairs });
            }
            let (raw_key, raw_value) = match piece.iter().position(|&b| b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &b""[..]),
            };
            let key = decode(raw_key, raw_key)?;
            let value = decode(raw_value, raw_key)?;
            self.pairs.push((key, value));
        }
        Ok(())
    }

    /// Appends a pair.
    pub fn append(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Form {
        self.pairs.push((key.into(), value.into()));
        self
    }

    /// Appends a pair unless `value` is empty.
    pub fn append_nonempty(&mut self, key: &str, value: &str) -> &mut Form {
        if !value.is_empty() {
            self.append(key, value);
        }
        self
    }

    /// Appends `key=true` when `flag` is set (the reference omits false flags).
    pub fn append_flag(&mut self, key: &str, flag: bool) -> &mut Form {
        if flag {
            self.append(key, "true");
        }
        self
    }

    /// Appends a number unless it is zero (the reference omits zero timestamps).
    pub fn append_nonzero(&mut self, key: &str, value: i64) -> &mut Form {
        if value != 0 {
            self.append(key, value.to_string());
        }
        self
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Encodes as `k=v&k=v`, escaping like Go's `url.QueryEscape` (space as `+`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            escape_into(k, &mut out);
            out.push('=');
            escape_into(v, &mut out);
        }
        out
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Form {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Form {
        Form {
            pairs: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

fn key_label(raw_key: &[u8]) -> String {
    let shown = &raw_key[..raw_key.len().min(64)];
    String::from_utf8_lossy(shown).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(raw: &[u8], raw_key: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex);
                let lo = raw.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => {
                        return Err(FormError::InvalidEscape {
                            key: key_label(raw_key),
                        });
                    }
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::InvalidUtf8 {
        key: key_label(raw_key),
    })
}

/// What Go's `url.QueryEscape` escapes: everything but `A-Z a-z 0-9 - _ . ~` (a space is
/// escaped too, then written as `+`).
const QUERY_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn escape_into(s: &str, out: &mut String) {
    for chunk in percent_encoding::utf8_percent_encode(s, QUERY_ESCAPE) {
        // A space is the only byte escaped as `%20`; Go writes it as `+`.
        if chunk.contains("%20") {
            out.push_str(&chunk.replace("%20", "+"));
        } else {
            out.push_str(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decoding_rules() {
        let f = Form::parse(b"a=1+2%2B3&&b&c=&d=%e2%82%AC", 10).unwrap();
        assert_eq!(f.get("a"), Some("1 2+3"));
        assert_eq!(f.get("b"), Some(""));
        assert_eq!(f.get("c"), Some(""));
        assert_eq!(f.get("d"), Some("€"));
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            Form::parse(b"zone=%zz", 10),
            Err(FormError::InvalidEscape { key: "zone".into() })
        );
        assert_eq!(
            Form::parse(b"env=%", 10),
            Err(FormError::InvalidEscape { key: "env".into() })
        );
        assert_eq!(
            Form::parse(b"k=%ff", 10),
            Err(FormError::InvalidUtf8 { key: "k".into() })
        );
        assert_eq!(
            Form::parse(b"a&b&c", 2),
            Err(FormError::TooManyPairs { max: 2 })
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Form::parse(&input, 64);
        }

        #[test]
        fn encode_then_parse_round_trips(pairs in proptest::collection::vec((".{0,12}", ".{0,12}"), 0..8)) {
            let form: Form = pairs.into_iter().collect();
            let parsed = Form::parse(form.encode().as_bytes(), 64).unwrap();
            prop_assert_eq!(parsed, form);
        }
    }
}
