//! `GET /ui`: a read-only dashboard of the registry (envs, apps, instances, nodes), static
//! HTML and JavaScript embedded in the binary. The page reads `/discovery/fetch/all` and
//! `/discovery/nodes`, then follows changes through the server's own long poll
//! (`/discovery/polls`). Everything it shows comes from clients, so it renders only text
//! (`textContent`, never markup), and a strict Content-Security-Policy forbids inline and
//! foreign scripts as a second line of defence.

use crate::body::Chunks;
use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use hyper::{Method, Response, StatusCode};

const PAGE: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The dashboard's response for `path`, or `None` when `path` is not a dashboard path.
pub(crate) fn serve(method: &Method, path: &str) -> Option<Response<Chunks>> {
    let (body, kind) = match path {
        "/ui" | "/ui/" => (PAGE, "text/html; charset=utf-8"),
        "/ui/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut resp = Response::new(Chunks::from(Bytes::from_static(body.as_bytes())));
    if method != Method::GET && method != Method::HEAD {
        *resp.body_mut() = Chunks::from(Bytes::new());
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(resp);
    }
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_page_and_script_only() {
        let page = serve(&Method::GET, "/ui").unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert!(serve(&Method::GET, "/ui/app.js").is_some());
        assert!(serve(&Method::GET, "/ui/other").is_none());
        assert!(serve(&Method::GET, "/discovery/fetch/all").is_none());
        let post = serve(&Method::POST, "/ui").unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(!PAGE.contains("innerHTML") && !SCRIPT.contains("innerHTML"));
    }
}
