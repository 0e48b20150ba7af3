//! Reading a request's parameters: the urlencoded body (POST) merged with the query string.
//!
//! As Go's `ParseForm`: body pairs come first (so they win for scalars), the body is parsed
//! only with `Content-Type: application/x-www-form-urlencoded`. The body is bounded in size
//! and read time; a JSON body is refused rather than silently ignored.

use super::access::mime;
use super::reply::{HttpResponse, bad_args, bad_request, too_large};
use crate::shared::Shared;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::http::request::Parts;
use sdkit_discovery_proto::Form;
use sdkit_discovery_proto::args::ArgError;

/// Reads the form of a request; `with_body` for POST endpoints.
pub(crate) async fn read(
    shared: &Shared,
    parts: &Parts,
    body: Incoming,
    with_body: bool,
) -> Result<Form, HttpResponse> {
    let max_pairs = shared.config.limits.fields.max_pairs;
    let mut form = Form::new();
    if with_body {
        let mime = mime(parts);
        if mime == "application/json" {
            return Err(bad_request(
                "content-type application/json is not supported: send application/x-www-form-urlencoded",
            ));
        }
        let bytes = read_body(shared, parts, body).await?;
        if mime == "application/x-www-form-urlencoded" {
            form.parse_into(&bytes, max_pairs)
                .map_err(|e| bad_args(&ArgError::Form(e)))?;
        }
    }
    if let Some(query) = parts.uri.query() {
        form.parse_into(query.as_bytes(), max_pairs)
            .map_err(|e| bad_args(&ArgError::Form(e)))?;
    }
    Ok(form)
}

async fn read_body(
    shared: &Shared,
    parts: &Parts,
    body: Incoming,
) -> Result<bytes::Bytes, HttpResponse> {
    let max = shared.config.limits.max_body_bytes;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large(max));
    }
    let timeout = shared.config.body_timeout;
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(max)),
        Ok(Err(e)) => Err(bad_request(format!("reading request body: {e}"))),
        Err(_) => Err(bad_request(format!(
            "request body not received within {timeout:?}"
        ))),
    }
}
