//! The HTTP API: routing, parameter reading, and one handler module per endpoint group.
//!
//! `handle` routes a hyper request (unknown path → 404, wrong method → 405), reads its form,
//! then `dispatch` runs the endpoint. `dispatch` takes an already parsed [`Form`], which is
//! what the property tests drive directly.

mod access;
mod caller;
mod envelope;
mod form;
mod poll;
mod read;
mod reply;
mod ui;
mod write;

pub(crate) use caller::Caller;
pub(crate) use reply::HttpResponse;

use crate::shared::Shared;
use hyper::Request;
use hyper::body::Incoming;
use hyper::http::HeaderMap;
use sdkit_discovery_proto::{Code, Endpoint, Form, Method};
use std::time::Duration;

/// The bm client's deadline header, in milliseconds.
const BMSPY_TIMEOUT: &str = "x1-bmspy-timeout";

/// Serves one request.
pub(crate) async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    caller: Caller,
) -> HttpResponse {
    if let Some(page) = ui::serve(req.method(), req.uri().path()) {
        return page;
    }
    let Some(endpoint) = Endpoint::from_path(req.uri().path()) else {
        return reply::not_found();
    };
    let method = endpoint.method();
    if req.method().as_str() != method.as_str() {
        return reply::method_not_allowed(method.as_str());
    }
    let (parts, body) = req.into_parts();
    if let Some(refusal) = access::refusal(shared, &parts, method) {
        return refusal;
    }
    let budget = client_budget(&parts.headers);
    match form::read(shared, &parts, body, method == Method::Post).await {
        Ok(form) => dispatch(shared, endpoint, &form, budget, caller).await,
        Err(resp) => resp,
    }
}

/// The caller's deadline from `x1-bmspy-timeout`, minus 20 ms as bm does.
fn client_budget(headers: &HeaderMap) -> Option<Duration> {
    let ms: u64 = headers
        .get(BMSPY_TIMEOUT)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms.saturating_sub(20)))
}

/// Runs an endpoint on a parsed form. `budget` caps a long poll's hold.
pub(crate) async fn dispatch(
    shared: &Shared,
    endpoint: Endpoint,
    form: &Form,
    budget: Option<Duration>,
    caller: Caller,
) -> HttpResponse {
    if endpoint.method() == Method::Get && shared.is_protected() {
        return reply::code(Code::SERVER_ERR);
    }
    match endpoint {
        Endpoint::Register => write::register(shared, form, caller),
        Endpoint::Renew => write::renew(shared, form, caller),
        Endpoint::Cancel => write::cancel(shared, form, caller),
        Endpoint::Set => write::set(shared, form, caller),
        Endpoint::Fetch => read::fetch(shared, form),
        Endpoint::Fetchs => read::fetchs(shared, form),
        Endpoint::FetchAll => read::fetch_all(shared).await,
        Endpoint::Nodes => read::nodes(shared),
        Endpoint::Poll => poll::poll(shared, form, budget, caller, true).await,
        Endpoint::Polls => poll::poll(shared, form, budget, caller, false).await,
    }
}
