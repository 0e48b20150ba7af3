//! Read handlers: `fetch`, `fetchs`, `fetch/all`, `nodes`.
//!
//! `fetch` and `fetchs` answer from each app's shared serialisation; `fetch/all` from one
//! serialisation shared by every caller (see `WholeAnswer`). `fetchs` and `fetch/all`
//! answers are bounded by `Limits::max_answer_bytes` (-509 over it).

use super::envelope;
use super::reply::{HttpResponse, bad_args, code, json, json_chunks, over_limit};
use crate::answers::Capped;
use crate::escape::Escaped;
use crate::shared::Shared;
use bytes::Bytes;
use sdkit_discovery_proto::args::{FetchArgs, FetchsArgs};
use sdkit_discovery_proto::{Code, Data, Form, Node, NodeStatus, Reply, StatusFilter};
use std::collections::BTreeSet;

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
            tracing::error!(error = %e, appid = %Escaped(&args.appid), "serialising a fetch answer");
            code(Code::SERVER_ERR)
        }
        None => json(&Reply::<()>::code(Code::NOTHING_FOUND).with_data(Data::Null)),
    }
}

/// `GET /discovery/fetchs`: `data` holds only the appids found; always code 0 (-509 when
/// the answer would pass `max_answer_bytes`).
pub(crate) fn fetchs(shared: &Shared, form: &Form) -> HttpResponse {
    let args = match FetchsArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    let max = shared.config.limits.max_answer_bytes;
    let mut found = Vec::new();
    let mut total = 0usize;
    for appid in args.appids.iter().collect::<BTreeSet<_>>() {
        let json = match shared.registry.fetch_json(
            &args.env,
            appid,
            &args.zone,
            StatusFilter(args.status),
        ) {
            Some(Ok(json)) => json,
            Some(Err(e)) => {
                tracing::error!(error = %e, appid = %Escaped(appid), "serialising a fetchs answer");
                return code(Code::SERVER_ERR);
            }
            None => continue,
        };
        total = total.saturating_add(json.len() + appid.len() + 4);
        if total > max {
            return over_limit(format!(
                "fetchs answer exceeds {max} bytes (max_answer_bytes)"
            ));
        }
        found.push((appid, json));
    }
    json_chunks(Code::OK, envelope::map(found))
}

/// `GET /discovery/fetch/all`: appid → instances across envs and zones.
pub(crate) async fn fetch_all(shared: &Shared) -> HttpResponse {
    let max = shared.config.limits.max_answer_bytes;
    let version = shared.registry.version();
    let data = shared
        .all
        .get(version, || async {
            let all = shared.registry.all();
            let built = tokio::task::spawn_blocking(move || {
                let mut out = Capped {
                    buf: Vec::new(),
                    max,
                };
                serde_json::to_writer(&mut out, &all).map(|()| Bytes::from(out.buf))
            })
            .await;
            match built {
                Ok(Ok(json)) => Ok(json),
                _ => Err(max),
            }
        })
        .await;
    match data {
        Ok(json) => json_chunks(Code::OK, envelope::ok(json)),
        Err(max) => over_limit(format!(
            "fetch/all answer exceeds {max} bytes (max_answer_bytes): fetch apps one by one"
        )),
    }
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
