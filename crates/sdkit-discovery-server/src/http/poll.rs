//! Long polls: `poll` (first appid only) and `polls`.
//!
//! 1. Subscribe to every requested (env, appid) *before* reading, so no change is missed.
//! 2. Read: answer at once when an app changed (`polls`: only the changed apps, plus the
//!    `error: {"-404": [...]}` miss list; `poll`: -404 at once for an unknown app).
//! 3. Otherwise park until a change, the hold (capped by `x1-bmspy-timeout`) or shutdown;
//!    the last two answer -304. A wake-up re-reads; the reply carries every app changed since
//!    the client's cursors, or the miss list when an app disappeared (the reference's pollers
//!    never hear that the last instance went away).

use super::caller::Caller;
use super::envelope;
use super::reply::{HttpResponse, bad_args, code, json_chunks, over_limit};
use crate::answers;
use crate::body::Chunks;
use crate::registry::{PollState, Subscription};
use crate::shared::Shared;
use bytes::Bytes;
use sdkit_discovery_proto::args::PollsArgs;
use sdkit_discovery_proto::{Code, Form, Reply};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Serves `poll` (`single`) or `polls`.
pub(crate) async fn poll(
    shared: &Shared,
    form: &Form,
    budget: Option<Duration>,
    caller: Caller,
    single: bool,
) -> HttpResponse {
    let hold = budget.map_or(shared.config.hold, |b| b.min(shared.config.hold));
    let deadline = Instant::now() + hold;
    let args = match PollsArgs::from_form(form, &shared.config.limits.fields) {
        Ok(args) => args,
        Err(e) => return bad_args(&e),
    };
    let cursors = match args.cursors(!single) {
        Ok(c) => c,
        Err(e) => return bad_args(&e),
    };
    let n = if single { 1 } else { args.appids.len() };
    let (appids, cursors) = (&args.appids[..n], &cursors[..n]);
    let mut subs: Vec<Subscription> = appids
        .iter()
        .flat_map(|a| shared.registry.subscribe(&args.env, a))
        .collect();
    let (_, states) = shared.registry.poll(&args.env, &args.zone, appids, cursors);
    let states = match collect(states) {
        Ok(states) => states,
        Err(e) => return serialisation_failed(&e),
    };
    // Missing apps the client never saw (cursor 0) do not end the wait; an app polled with
    // a cursor was known to the client, so its absence is news: it was deleted before the
    // poll arrived, and the answer is the miss entry at once, as for a deletion while parked.
    let parked_missing: BTreeSet<String> = appids
        .iter()
        .zip(cursors)
        .zip(&states)
        .filter(|((_, c), s)| **c <= 0 && matches!(s, PollState::Missing))
        .map(|((a, _), _)| a.clone())
        .collect();
    match answer(single, appids, states, &parked_missing) {
        Ok(Some((code, body))) => return json_chunks(code, body),
        Ok(None) => {}
        Err(e) => return serialisation_failed(&e),
    }
    // Every topic listened to costs one unit of the parked-poll budget, in total and for
    // the caller's address.
    let _permit = match shared.parked.acquire(caller.ip, subs.len()) {
        Ok(permit) => permit,
        Err(refused) => return over_limit(refused.to_string()),
    };
    let _parked = Parked::new(&shared.stats.parked);
    let key = answers::key(
        single,
        &args.env,
        &args.zone,
        appids,
        cursors,
        &parked_missing,
    );
    loop {
        tokio::select! {
            () = wait_any(&mut subs) => {}
            () = tokio::time::sleep_until(deadline) => return code(Code::NOT_MODIFIED),
            () = shared.shutdown.cancelled() => return code(Code::NOT_MODIFIED),
        }
        // Polls woken together mostly ask the same question: answer from the shared table
        // while the store is unchanged.
        if let Some((code, body)) = shared.answers.get(&key, shared.registry.version()) {
            return json_chunks(code, body);
        }
        let (version, states) = shared.registry.poll(&args.env, &args.zone, appids, cursors);
        let states = match collect(states) {
            Ok(states) => states,
            Err(e) => return serialisation_failed(&e),
        };
        match answer(single, appids, states, &parked_missing) {
            Ok(Some((code, body))) => {
                shared.answers.put(key, version, code, body.clone());
                return json_chunks(code, body);
            }
            Ok(None) => {}
            Err(e) => return serialisation_failed(&e),
        }
    }
}

/// The states, or the error when an app's instance list could not be serialised.
fn collect(
    states: Vec<Result<PollState, serde_json::Error>>,
) -> Result<Vec<PollState>, serde_json::Error> {
    states.into_iter().collect()
}

fn serialisation_failed(e: &serde_json::Error) -> HttpResponse {
    tracing::error!(error = %e, "serialising a long-poll answer");
    code(Code::SERVER_ERR)
}

/// The reply for `states`, or `None` to keep waiting. `known_missing` are the missing apps
/// that do not end the wait (the client never saw them, or they were already missing when
/// the request parked); any other missing app is worth an answer.
fn answer(
    single: bool,
    appids: &[String],
    states: Vec<PollState>,
    known_missing: &BTreeSet<String>,
) -> Result<Option<(Code, Chunks)>, serde_json::Error> {
    if single {
        return Ok(match states.into_iter().next() {
            Some(PollState::Missing) => {
                let message = format!("{} not found", appids[0]);
                let reply = Reply::<()>::error(Code::NOTHING_FOUND, message).without_ttl();
                Some((reply.code, Chunks::from(Bytes::from(reply.to_vec()))))
            }
            Some(PollState::Changed(info)) => Some((Code::OK, envelope::ok(info))),
            Some(PollState::NotModified) | None => None,
        });
    }
    let mut changed = BTreeMap::new();
    let mut missing = Vec::new();
    for (appid, state) in appids.iter().zip(states) {
        match state {
            PollState::Missing => missing.push(appid.clone()),
            PollState::Changed(info) => {
                changed.insert(appid, info);
            }
            PollState::NotModified => {}
        }
    }
    let newly_missing = missing.iter().any(|a| !known_missing.contains(a));
    if changed.is_empty() && !newly_missing {
        return Ok(None);
    }
    Ok(Some((Code::OK, envelope::polls(changed, &missing)?)))
}

/// Resolves when any subscription fires.
async fn wait_any(subs: &mut [Subscription]) {
    if subs.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(subs.iter_mut().map(|s| Box::pin(s.changed()))).await;
}

/// Counts a parked request while held (`Stats::parked_polls`).
struct Parked<'a>(&'a AtomicUsize);

impl<'a> Parked<'a> {
    fn new(counter: &'a AtomicUsize) -> Parked<'a> {
        counter.fetch_add(1, Ordering::AcqRel);
        Parked(counter)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
