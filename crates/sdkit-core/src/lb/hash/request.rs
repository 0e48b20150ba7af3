//! [`RequestHash`]: a call's request hash, given by the caller or read from a request header.

use super::hash_key;

/// A call's request hash: calls with the same hash go to the same endpoint under a
/// consistent-hashing balancer ([`Maglev`](super::Maglev), [`RingHash`](super::RingHash)) while
/// it stays ready. The gRPC channel takes one from a request's extensions; the gRPC channel
/// and the HTTP client can also read it from a configured request header
/// ([`RequestHash::of_values`] over the header's values, gRFC A76's `requestHashHeader`).
///
/// ```
/// use sdkit_core::lb::hash::{RequestHash, hash_key};
///
/// assert_eq!(RequestHash::of_key("alice"), RequestHash(hash_key(b"alice")));
/// // A header sent twice: its values joined with a comma.
/// let values: [&[u8]; 2] = [b"a", b"b"];
/// assert_eq!(RequestHash::of_values(values), Some(RequestHash::of_key("a,b")));
/// assert_eq!(RequestHash::of_values(std::iter::empty::<&[u8]>()), None);
/// assert!(RequestHash::check_header_name("x-user-id").is_ok());
/// assert!(RequestHash::check_header_name("x-user-bin").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestHash(pub u64);

impl RequestHash {
    /// The hash of a byte key (as [`hash_key`]).
    pub fn of_key(key: impl AsRef<[u8]>) -> Self {
        RequestHash(hash_key(key.as_ref()))
    }

    /// The hash of a header's values (several joined with `,`, as gRFC A76 says), or `None`
    /// when there is none.
    pub fn of_values<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Self> {
        let mut values = values.into_iter();
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Self::of_key(first));
        };
        let mut joined = Vec::with_capacity(first.len() + second.len() + 1);
        joined.extend_from_slice(first);
        for value in std::iter::once(second).chain(values) {
            joined.push(b',');
            joined.extend_from_slice(value);
        }
        Some(Self::of_key(joined))
    }

    /// Checks the name of a request hash header from a config: a lowercase HTTP token (RFC 9110
    /// `tchar`s), not a binary (`-bin`) metadata key, not a pseudo-header (gRFC A76 refuses
    /// both).
    ///
    /// # Errors
    ///
    /// A message naming the fault, the name escaped.
    pub fn check_header_name(name: &str) -> Result<(), String> {
        let tchar =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.ends_with("-bin") {
            Err(format!(
                "`{}` is a binary header; a request hash header must be an ASCII one",
                name.escape_debug()
            ))
        } else if name.is_empty() || !name.bytes().all(tchar) {
            Err(format!(
                "`{}` is not a valid lowercase header name",
                name.escape_debug()
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_its_hash_several_joined_with_commas() {
        let one: [&[u8]; 1] = [b"alice"];
        assert_eq!(
            RequestHash::of_values(one),
            Some(RequestHash::of_key("alice"))
        );
        let three: [&[u8]; 3] = [b"a", b"b", b"c"];
        assert_eq!(
            RequestHash::of_values(three),
            Some(RequestHash::of_key("a,b,c"))
        );
        assert_ne!(RequestHash::of_key("alice"), RequestHash::of_key("bob"));
    }

    #[test]
    fn binary_pseudo_and_malformed_names_are_refused() {
        for bad in [
            "x-user-bin",
            ":path",
            "X-User",
            "",
            "x user",
            "x-\u{1b}[31m",
            "é",
        ] {
            let error = RequestHash::check_header_name(bad).expect_err(bad);
            assert!(!error.contains('\u{1b}'), "{error}");
        }
        for good in ["x-user", "x-user-id", "grpc-x", "a.b_c~1"] {
            assert_eq!(RequestHash::check_header_name(good), Ok(()), "{good}");
        }
    }
}
