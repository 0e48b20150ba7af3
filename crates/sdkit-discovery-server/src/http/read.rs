//! Read handlers: `fetch`, `fetchs`, `fetch/all`, `nodes`.

use super::envelope;
use super::reply::{HttpResponse, bad_args, code, json, json_chunks};
use crate::server::Shared;
use sdkit_discovery_proto::args::{FetchArgs, FetchsArgs};
use sdkit_discovery_proto::{Code, Data, Form, Node, NodeStatus, Reply, StatusFilter};

/// `GET /discovery/fetch`: -404 with `data: null` for an unknown app or absent zone.
pub(crate) fn fetch(shared: &Shared, form: &Form) -> HttpResponse {
    let args = match FetchArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    match shared.registry.fetch_json(
        &args.env,
        &args.appid,
        &args.zone,
        StatusFilter(args.status),
    ) {
        Some(Ok(info)) => json_chunks(Code::OK, envelope::ok(info)),
        Some(Err(e)) => {
            tracing::error!(error = %e, appid = %args.appid, "serialising a fetch answer");
            code(Code::SERVER_ERR)
        }
        None => json(&Reply::<()>::code(Code::NOTHING_FOUND).with_data(Data::Null)),
    }
}

/// `GET /discovery/fetchs`: `data` holds only the appids found; always code 0.
pub(crate) fn fetchs(shared: &Shared, form: &Form) -> HttpResponse {
    let args = match FetchsArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    let found = shared.registry.fetchs(
        &args.env,
        &args.appids,
        &args.zone,
        StatusFilter(args.status),
    );
    json(&Reply::ok(found))
}

/// `GET /discovery/fetch/all`: appid → instances across envs and zones.
pub(crate) fn fetch_all(shared: &Shared) -> HttpResponse {
    json(&Reply::ok(shared.registry.all()))
}

/// `GET /discovery/nodes`: this node (replication is not part of the embedded server).
pub(crate) fn nodes(shared: &Shared) -> HttpResponse {
    let Some(addr) = shared.addr.get() else {
        return code(Code::SERVER_ERR);
    };
    let node = Node {
        addr: addr.to_string(),
        status: NodeStatus::Up,
        zone: shared.config.zone.clone(),
    };
    json(&Reply::ok(vec![node]))
}
