//! The request hash of a call, for the consistent-hashing policies (`ring_hash`,
//! `ring_hash_experimental`, `maglev`): set by the caller ([`RequestHash`], gRPC-go's
//! `SetRequestHash`), else read from one request header (gRFC A76's `requestHashHeader`),
//! else none (the policy then draws a random hash for the call).

use http::HeaderName;
use http::request::Parts;
use sdkit_core::lb::PickContext;

/// A call's request hash, set by the caller as a request extension: calls with the same hash go
/// to the same endpoint under a consistent-hashing policy (`ring_hash`,
/// `ring_hash_experimental`, `maglev`) while it stays ready. It wins over a configured
/// request hash header; other policies ignore it.
///
/// ```
/// use sdkit_grpc::RequestHash;
///
/// let mut request = tonic::Request::new(());
/// request.extensions_mut().insert(RequestHash::of_key("user-42"));
/// assert_eq!(request.extensions().get::<RequestHash>(), Some(&RequestHash::of_key("user-42")));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestHash(pub u64);

impl RequestHash {
    /// The hash of `key` (the stable hash sdkit's balancers use for keys).
    pub fn of_key(key: impl std::hash::Hash) -> Self {
        RequestHash(
            PickContext::new()
                .with_hash_key(key)
                .hash()
                .unwrap_or_default(),
        )
    }
}

/// The request hash of a call: the caller's [`RequestHash`], else the values of `header`
/// (several joined with `,`, as gRFC A76 says), else `None`.
pub(crate) fn of_request(parts: &Parts, header: Option<&HeaderName>) -> Option<u64> {
    if let Some(RequestHash(hash)) = parts.extensions.get::<RequestHash>() {
        return Some(*hash);
    }
    let header = header?;
    let mut values = parts.headers.get_all(header).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(RequestHash::of_key(first.as_bytes()).0);
    };
    let mut joined = Vec::with_capacity(first.len() + second.len() + 1);
    joined.extend_from_slice(first.as_bytes());
    for value in std::iter::once(second).chain(values) {
        joined.push(b',');
        joined.extend_from_slice(value.as_bytes());
    }
    Some(RequestHash::of_key(joined.as_slice()).0)
}

/// Checks a request hash header name from a config: a valid lowercase metadata key, not a
/// binary (`-bin`) one, not a pseudo-header (gRFC A76 rejects both).
pub(crate) fn header_name(name: &str) -> Result<HeaderName, String> {
    if name.ends_with("-bin") {
        return Err(format!(
            "`{}` is a binary header; a request hash header must be an ASCII one",
            name.escape_debug()
        ));
    }
    HeaderName::from_bytes(name.as_bytes())
        .ok()
        .filter(|h| h.as_str() == name)
        .ok_or_else(|| {
            format!(
                "`{}` is not a valid lowercase header name",
                name.escape_debug()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_extension_wins_then_the_header_then_nothing() {
        let header = header_name("x-user").unwrap();
        let mut with_both = parts(&[("x-user", "alice")]);
        with_both.extensions.insert(RequestHash(7));
        assert_eq!(of_request(&with_both, Some(&header)), Some(7));
        let alice = of_request(&parts(&[("x-user", "alice")]), Some(&header));
        assert_eq!(alice, Some(RequestHash::of_key(b"alice".as_slice()).0));
        assert_ne!(
            alice,
            of_request(&parts(&[("x-user", "bob")]), Some(&header))
        );
        assert_eq!(
            of_request(&parts(&[("x-other", "alice")]), Some(&header)),
            None
        );
        assert_eq!(of_request(&parts(&[("x-user", "alice")]), None), None);
    }

    #[test]
    fn several_values_are_joined_with_commas() {
        let header = header_name("x-user").unwrap();
        let two = of_request(&parts(&[("x-user", "a"), ("x-user", "b")]), Some(&header));
        assert_eq!(two, Some(RequestHash::of_key(b"a,b".as_slice()).0));
        assert_eq!(two, of_request(&parts(&[("x-user", "a,b")]), Some(&header)));
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
        ] {
            let error = header_name(bad).expect_err(bad);
            assert!(!error.contains('\u{1b}'), "{error}");
        }
        assert_eq!(header_name("x-user").unwrap().as_str(), "x-user");
    }
}
