//! The request hash of a call, for the consistent-hashing policies (`ring_hash`,
//! `ring_hash_experimental`, `maglev`): set by the caller as a [`RequestHash`] request
//! extension (gRPC-go's `SetRequestHash`), else read from one request header (gRFC A76's
//! `requestHashHeader`), else none (the policy then draws a random hash for the call).

use http::HeaderName;
use http::request::Parts;
use sdkit_core::lb::hash::RequestHash;

/// The request hash of a call: the caller's [`RequestHash`], else that of `header`'s values.
pub(crate) fn of_request(parts: &Parts, header: Option<&HeaderName>) -> Option<u64> {
    if let Some(RequestHash(hash)) = parts.extensions.get::<RequestHash>() {
        return Some(*hash);
    }
    let values = parts.headers.get_all(header?).iter().map(|v| v.as_bytes());
    RequestHash::of_values(values).map(|RequestHash(hash)| hash)
}

/// A request hash header name from a config, checked.
pub(crate) fn header_name(name: &str) -> Result<HeaderName, String> {
    RequestHash::check_header_name(name)?;
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_wins_then_the_header_then_nothing() {
        let header = header_name("x-user").unwrap();
        let parts = |user: Option<&str>, hash: Option<u64>| {
            let mut request = http::Request::builder();
            if let Some(user) = user {
                request = request.header("x-user", user);
            }
            let mut parts = request.body(()).unwrap().into_parts().0;
            if let Some(hash) = hash {
                parts.extensions.insert(RequestHash(hash));
            }
            parts
        };
        assert_eq!(
            of_request(&parts(Some("alice"), Some(7)), Some(&header)),
            Some(7)
        );
        assert_eq!(
            of_request(&parts(Some("alice"), None), Some(&header)),
            Some(RequestHash::of_key("alice").0)
        );
        assert_eq!(of_request(&parts(None, None), Some(&header)), None);
        assert_eq!(of_request(&parts(Some("alice"), None), None), None);
    }
}
