//! Who may do what: the bearer token, cross-site browser writes, DNS rebinding, and the
//! server's own `infra.discovery` record.
//!
//! * With a token configured, writes (and with `token_reads` every request) need
//!   `Authorization: Bearer <token>`; otherwise HTTP 401.
//! * A POST with a body must be `application/x-www-form-urlencoded` (HTTP 415 otherwise),
//!   and a POST a browser sent cross-site (`Origin` naming another host, or
//!   `Sec-Fetch-Site: cross-site`/`same-site`) is refused with HTTP 403: a form content type
//!   alone does not stop an HTML form, the browser's own headers do.
//! * On a loopback listener the `Host` header must name a loopback host (`localhost`,
//!   `*.localhost`, `127.0.0.0/8`, `::1`), so a web page whose DNS name was rebound to
//!   127.0.0.1 cannot reach the registry; HTTP 403 otherwise.

use super::reply::{HttpResponse, refused};
use crate::shared::Shared;
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING};
use hyper::http::request::Parts;
use sdkit_discovery_proto::Method;
use std::net::IpAddr;

/// The refusal to send, if the request may not run.
pub(crate) fn refusal(shared: &Shared, parts: &Parts, method: Method) -> Option<HttpResponse> {
    if shared.addr.get().is_some_and(|a| a.ip().is_loopback()) && !loopback_host(parts) {
        return Some(refused(
            StatusCode::FORBIDDEN,
            -403,
            "the Host header must name a loopback host on a loopback listener",
        ));
    }
    if let Some(token) = &shared.config.token
        && (method == Method::Post || shared.config.token_reads)
    {
        {
            let presented = parts
                .headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if !presented.is_some_and(|p| token.matches(p)) {
                let mut resp = refused(
                    StatusCode::UNAUTHORIZED,
                    -401,
                    "a valid Authorization: Bearer token is required",
                );
                resp.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    hyper::header::HeaderValue::from_static("Bearer"),
                );
                return Some(resp);
            }
        }
    }
    if method == Method::Post {
        if cross_site(parts) {
            return Some(refused(
                StatusCode::FORBIDDEN,
                -403,
                "cross-site browser requests may not write",
            ));
        }
        let mime = mime(parts);
        if has_body(parts) && mime != "application/x-www-form-urlencoded" {
            return Some(refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                -400,
                "a POST body must be application/x-www-form-urlencoded",
            ));
        }
    }
    None
}

/// The media type of the body, lower case, without parameters.
pub(crate) fn mime(parts: &Parts) -> String {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether the request announces a body (kratos v2 POSTs with the query string only).
fn has_body(parts: &Parts) -> bool {
    parts.headers.contains_key(TRANSFER_ENCODING)
        || parts
            .headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Whether a browser sent this from another site.
fn cross_site(parts: &Parts) -> bool {
    let fetch_site = parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if fetch_site.eq_ignore_ascii_case("cross-site") || fetch_site.eq_ignore_ascii_case("same-site")
    {
        return true;
    }
    let Some(origin) = parts.headers.get(ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("null");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = parts
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !origin_host.eq_ignore_ascii_case(host)
}

/// Whether the `Host` header names a loopback host (with or without a port).
fn loopback_host(parts: &Parts) -> bool {
    let Some(host) = parts.headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(ip6, _)| ip6)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = hyper::Request::builder()
            .method("POST")
            .uri("/discovery/register");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "LOCALHOST:7171",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:7171",
            "a.localhost",
            "localhost.",
        ] {
            assert!(loopback_host(&parts(&[("host", ok)])), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7171",
            "10.0.0.1",
            "[::2]",
            "localhost.evil.example",
            "",
        ] {
            assert!(!loopback_host(&parts(&[("host", bad)])), "{bad}");
        }
        assert!(!loopback_host(&parts(&[])));
    }

    #[test]
    fn cross_site_writes() {
        assert!(!cross_site(&parts(&[("host", "127.0.0.1:7171")])));
        assert!(!cross_site(&parts(&[
            ("host", "127.0.0.1:7171"),
            ("origin", "http://127.0.0.1:7171")
        ])));
        assert!(cross_site(&parts(&[
            ("host", "127.0.0.1:7171"),
            ("origin", "http://evil.example")
        ])));
        assert!(cross_site(&parts(&[
            ("host", "127.0.0.1:7171"),
            ("origin", "null")
        ])));
        assert!(cross_site(&parts(&[
            ("host", "h"),
            ("sec-fetch-site", "cross-site")
        ])));
    }
}
