//! Write handlers: `register`, `renew`, `cancel`, `set`.

use super::reply::{HttpResponse, bad_args, bad_request, code, json};
use crate::registry::RenewError;
use crate::server::Shared;
use sdkit_discovery_proto::args::{CancelArgs, RegisterArgs, RenewArgs, SetArgs};
use sdkit_discovery_proto::{Code, Data, Form, Instance, Reply};

/// `POST /discovery/register`.
pub(crate) fn register(shared: &Shared, form: &Form) -> HttpResponse {
    let args = match RegisterArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    match shared.registry.register(&args) {
        Ok(()) => code(Code::OK),
        Err(e) => json(&Reply::<()>::error(Code::LIMIT_EXCEED, e.0)),
    }
}

/// `POST /discovery/renew`: `data` is the instance; -404 with `null`; -409 with the newer copy.
pub(crate) fn renew(shared: &Shared, form: &Form) -> HttpResponse {
    let args = match RenewArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    let reply = match shared.registry.renew(&args) {
        Ok(ins) => Reply::ok(ins),
        Err(RenewError::NotFound) => Reply::code(Code::NOTHING_FOUND).with_data(Data::Null),
        Err(RenewError::Conflict(ins)) => Reply::code(Code::CONFLICT).with_data(Data::Value(ins)),
    };
    json::<std::sync::Arc<Instance>>(&reply)
}

/// `POST /discovery/cancel`.
pub(crate) fn cancel(shared: &Shared, form: &Form) -> HttpResponse {
    match CancelArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) if shared.registry.cancel(&args) => code(Code::OK),
        Ok(_) => code(Code::NOTHING_FOUND),
        Err(e) => bad_args(&e),
    }
}

/// `POST /discovery/set`: all hostnames must exist, else nothing changes and -400 names it.
pub(crate) fn set(shared: &Shared, form: &Form) -> HttpResponse {
    let args = match SetArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    match shared.registry.set(&args) {
        Ok(()) => code(Code::OK),
        Err(message) => bad_request(message),
    }
}
