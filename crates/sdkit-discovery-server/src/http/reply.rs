//! Turning envelopes and HTTP-level refusals into responses.
//!
//! Application results are HTTP 200 with a JSON envelope and the `kratos-status-code`
//! header, as the reference's bm framework writes them.

use crate::body::Chunks;
use bytes::Bytes;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use sdkit_discovery_proto::args::ArgError;
use sdkit_discovery_proto::{Code, Reply};
use serde::Serialize;

/// The response type of every handler.
pub(crate) type HttpResponse = Response<Chunks>;

/// HTTP 200 with the envelope.
pub(crate) fn json<T: Serialize>(reply: &Reply<T>) -> HttpResponse {
    with_status(StatusCode::OK, reply)
}

fn with_status<T: Serialize>(status: StatusCode, reply: &Reply<T>) -> HttpResponse {
    let mut resp = json_bytes(reply.code, Bytes::from(reply.to_vec()));
    *resp.status_mut() = status;
    resp
}

/// HTTP 200 with an already serialised envelope whose code is `code`.
pub(crate) fn json_bytes(code: Code, body: Bytes) -> HttpResponse {
    json_chunks(code, Chunks::from(body))
}

/// HTTP 200 with an envelope in shared chunks whose code is `code`.
pub(crate) fn json_chunks(code: Code, body: Chunks) -> HttpResponse {
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert("kratos-status-code", code_header(code));
    resp
}

/// The `kratos-status-code` value; the common codes without an allocation.
fn code_header(code: Code) -> HeaderValue {
    match code.0 {
        0 => HeaderValue::from_static("0"),
        -304 => HeaderValue::from_static("-304"),
        -400 => HeaderValue::from_static("-400"),
        -404 => HeaderValue::from_static("-404"),
        other => HeaderValue::from(other),
    }
}

/// `{"code":c,"message":"c","ttl":1}`.
pub(crate) fn code(code: Code) -> HttpResponse {
    json(&Reply::<()>::code(code))
}

/// -400 naming the offending field.
pub(crate) fn bad_args(err: &ArgError) -> HttpResponse {
    bad_request(err.to_string())
}

/// -400 with a message.
pub(crate) fn bad_request(message: impl Into<String>) -> HttpResponse {
    json(&Reply::<()>::error(Code::REQUEST_ERR, message))
}

/// An HTTP-level refusal (`status`) with an envelope of `code` and `message`.
pub(crate) fn refused(status: StatusCode, code: i32, message: &str) -> HttpResponse {
    with_status(status, &Reply::<()>::error(Code(code), message))
}

/// -509 naming the capacity limit.
pub(crate) fn over_limit(message: impl Into<String>) -> HttpResponse {
    json(&Reply::<()>::error(Code::LIMIT_EXCEED, message))
}

/// HTTP 413 with a -400 envelope.
pub(crate) fn too_large(max: usize) -> HttpResponse {
    let reply = Reply::<()>::error(
        Code::REQUEST_ERR,
        format!("request body exceeds {max} bytes"),
    );
    with_status(StatusCode::PAYLOAD_TOO_LARGE, &reply)
}

/// HTTP 404 for a path outside the API.
pub(crate) fn not_found() -> HttpResponse {
    text(StatusCode::NOT_FOUND, "404 page not found")
}

/// HTTP 405 with the one allowed method.
pub(crate) fn method_not_allowed(allowed: &'static str) -> HttpResponse {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    resp
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut resp = Response::new(Chunks::from(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
