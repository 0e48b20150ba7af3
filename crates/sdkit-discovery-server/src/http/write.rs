//! Write handlers: `register`, `renew`, `cancel`, `set`.
//!
//! Timestamps in the forms are honoured only from a trusted peer ([`Caller::trusted`]); the
//! server's own `infra.discovery` record is written by the server alone (-403).

use super::caller::Caller;
use super::reply::{HttpResponse, bad_args, bad_request, code, json, over_limit, refused};
use crate::registry::{InstanceKey, RenewError, check_metadata};
use crate::shared::Shared;
use hyper::StatusCode;
use sdkit_discovery_proto::args::{CancelArgs, RegisterArgs, RenewArgs, SetArgs};
use sdkit_discovery_proto::{Code, Data, Form, Instance, Reply};

/// The -403 refusal when (env, appid, zone, hostname) is the server's own record.
fn own_record(
    shared: &Shared,
    env: &str,
    appid: &str,
    zone: &str,
    hostname: &str,
) -> Option<HttpResponse> {
    let key = InstanceKey {
        env: env.to_owned(),
        appid: appid.to_owned(),
        zone: zone.to_owned(),
        hostname: hostname.to_owned(),
    };
    if shared.registry.is_own(&key) {
        return Some(refused(
            StatusCode::OK,
            -403,
            "the server's own infra.discovery record is written by the server only",
        ));
    }
    None
}

/// `POST /discovery/register`.
pub(crate) fn register(shared: &Shared, form: &Form, caller: Caller) -> HttpResponse {
    let args = match RegisterArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    if let Some(refusal) = own_record(shared, &args.env, &args.appid, &args.zone, &args.hostname) {
        return refusal;
    }
    if let Err(e) = check_metadata(&args.metadata, &shared.config.limits) {
        return bad_request(e);
    }
    match shared.registry.register(&args, caller.trusted) {
        Ok(()) => code(Code::OK),
        Err(e) => over_limit(e.0),
    }
}

/// `POST /discovery/renew`: `data` is the instance; -404 with `null`; -409 with the newer copy.
pub(crate) fn renew(shared: &Shared, form: &Form, caller: Caller) -> HttpResponse {
    let args = match RenewArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    if let Some(refusal) = own_record(shared, &args.env, &args.appid, &args.zone, &args.hostname) {
        return refusal;
    }
    let reply = match shared.registry.renew(&args, caller.trusted) {
        Ok(ins) => Reply::ok(ins),
        Err(RenewError::NotFound) => Reply::code(Code::NOTHING_FOUND).with_data(Data::Null),
        Err(RenewError::Conflict(ins)) => Reply::code(Code::CONFLICT).with_data(Data::Value(ins)),
    };
    json::<std::sync::Arc<Instance>>(&reply)
}

/// `POST /discovery/cancel`.
pub(crate) fn cancel(shared: &Shared, form: &Form, caller: Caller) -> HttpResponse {
    let args = match CancelArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    if let Some(refusal) = own_record(shared, &args.env, &args.appid, &args.zone, &args.hostname) {
        return refusal;
    }
    if shared.registry.cancel(&args, caller.trusted) {
        code(Code::OK)
    } else {
        code(Code::NOTHING_FOUND)
    }
}

/// `POST /discovery/set`: all hostnames must exist and every merged metadata fit, else
/// nothing changes and -400 names the problem.
pub(crate) fn set(shared: &Shared, form: &Form, caller: Caller) -> HttpResponse {
    let args = match SetArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    for host in &args.hostnames {
        if let Some(refusal) = own_record(shared, &args.env, &args.appid, &args.zone, host) {
            return refusal;
        }
    }
    match shared.registry.set(&args, caller.trusted) {
        Ok(()) => code(Code::OK),
        Err(message) => bad_request(message),
    }
}
