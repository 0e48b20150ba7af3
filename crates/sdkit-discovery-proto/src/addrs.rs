//! Splitting comma-joined `addrs` values.
//!
//! The reference server replicates `register` with one `addrs` value joined by commas
//! (`http://a:8001,grpc://a:9001`) but no longer splits on receipt (bilibili/discovery #86), so
//! peers store one bogus address. Both server and client split defensively: a value is cut at
//! every comma that is followed by another `scheme://`. Commas elsewhere (inside a query
//! string, say) are kept.

/// Splits every value at commas that start another `scheme://` address; empty pieces are
/// dropped.
///
/// ```
/// use sdkit_discovery_proto::split_addrs;
/// let v = split_addrs(["http://a:8001,grpc://a:9001", "grpc://b:1?x=1,2"]);
/// assert_eq!(v, ["http://a:8001", "grpc://a:9001", "grpc://b:1?x=1,2"]);
/// ```
pub fn split_addrs<I, S>(values: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::new();
    for value in values {
        let mut current = String::new();
        for part in value.as_ref().split(',') {
            if part.is_empty() {
                continue;
            }
            if !current.is_empty() && !starts_with_scheme(part) {
                current.push(',');
                current.push_str(part);
                continue;
            }
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.push_str(part);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// Whether `s` begins with `scheme://`, scheme per RFC 3986 (`ALPHA *(ALPHA / DIGIT / + / - / .)`).
fn starts_with_scheme(s: &str) -> bool {
    let Some(end) = s.find("://") else {
        return false;
    };
    let scheme = &s[..end];
    let mut chars = scheme.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_pass_through() {
        assert_eq!(
            split_addrs(["grpc://10.0.0.1:9000"]),
            ["grpc://10.0.0.1:9000"]
        );
        assert!(split_addrs([""]).is_empty());
    }

    #[test]
    fn joined_values_split() {
        assert_eq!(
            split_addrs(["http://a:1,grpc://a:2,tcp://a:3"]),
            ["http://a:1", "grpc://a:2", "tcp://a:3"]
        );
    }

    #[test]
    fn empty_parts_dropped_and_other_commas_kept() {
        assert_eq!(
            split_addrs([",http://a:1,,grpc://b,"]),
            ["http://a:1", "grpc://b"]
        );
        assert_eq!(split_addrs(["a,b"]), ["a,b"]);
    }
}
