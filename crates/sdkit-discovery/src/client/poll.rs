//! The long-poll loop: what to ask next ([`Plan`](super::Plan)), one step of `fetchs` or
//! `polls`, the `-304` verification, applying answers to the watched apps and the node list.

use std::collections::BTreeMap;
use std::sync::Arc;

use sdkit_core::SourceError;
use sdkit_discovery_proto::args::PollsArgs;
use sdkit_discovery_proto::{
    Code, Endpoint, INFRA_DISCOVERY, Instance as WireInstance, InstanceInfo, Status,
};
use tracing::{debug, info, warn};

use super::transport::{BMSPY_MARGIN, code_error};
use super::{AppState, Inner, Plan};
use crate::Error;
use crate::config::normalize_node;

impl Inner {
    /// What to send next to `node`; resets the cursors when `node` did not issue them.
    pub(super) fn plan(&self, node: &str) -> Plan {
        let mut state = self.lock_state();
        if state.cursor_node.as_deref() != Some(node) {
            for entry in state.apps.values_mut() {
                entry.cursor = None;
            }
            state.cursor_node = Some(node.to_owned());
            state.epoch = None;
            if state.had_node {
                state.switched_at = Some(tokio::time::Instant::now());
            }
            state.had_node = true;
        }
        if state.apps.is_empty() {
            return Plan::Idle;
        }
        let unsynced: Vec<String> = state
            .apps
            .iter()
            .filter(|(_, e)| e.cursor.is_none())
            .map(|(a, _)| a.clone())
            .collect();
        if !unsynced.is_empty() {
            return Plan::Fetch(unsynced);
        }
        let (appids, cursors) = state
            .apps
            .iter()
            .map(|(a, e)| (a.clone(), e.cursor.unwrap_or(0)))
            .unzip();
        Plan::Poll(appids, cursors)
    }

    /// One step of the loop against `node`; `Ok(true)` when it made progress (a cursor or an
    /// answer changed, the watch set changed), `Ok(false)` for an answer without news.
    pub(super) async fn step(&self, node: &str) -> Result<bool, Error> {
        let wake = self.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        match self.plan(node) {
            Plan::Idle => {
                wake.await;
                Ok(true)
            }
            Plan::Fetch(appids) => {
                let mut data = self.fetchs(node, appids.clone()).await?;
                let mut progress = false;
                for appid in &appids {
                    let info = data.remove(appid);
                    progress |= self.apply(node, appid, info);
                }
                Ok(progress)
            }
            Plan::Poll(appids, cursors) => {
                let args = PollsArgs {
                    env: self.config.env.clone(),
                    hostname: self.watcher_id.clone(),
                    appids,
                    latest_timestamps: cursors,
                    zone: String::new(),
                };
                let form = args.to_form();
                let poll = self.call::<BTreeMap<String, InstanceInfo>>(
                    node,
                    Endpoint::Polls,
                    &form,
                    self.config.poll_hold + BMSPY_MARGIN,
                );
                let reply = tokio::select! {
                    // A change of the watch set wins: the old poll is never sent.
                    biased;
                    () = &mut wake => {
                        debug!("watch set changed: re-issuing the long poll");
                        return Ok(true);
                    }
                    reply = poll => reply?,
                };
                match reply.code {
                    Code::NOT_MODIFIED => self.verify(node).await,
                    Code::OK => {
                        let misses = reply.error.unwrap_or_default();
                        let data = reply.data.into_value().unwrap_or_default();
                        // An app that had instances reported unknown or empty by the node in
                        // use: did the node restart (without any request failing)?
                        let emptied = misses.appids().iter().map(String::as_str).chain(
                            data.iter()
                                .filter(|(_, info)| {
                                    info.instances
                                        .values()
                                        .flatten()
                                        .all(|i| i.status != Status::Up.as_u32())
                                })
                                .map(|(a, _)| a.as_str()),
                        );
                        if self.needs_epoch_check(node, emptied) {
                            self.check_epoch(node).await?;
                        }
                        let mut progress = false;
                        for (appid, info) in data {
                            if args.appids.contains(&appid) {
                                progress |= self.apply(node, &appid, Some(info));
                            }
                        }
                        for appid in misses.appids() {
                            if args.appids.contains(appid) {
                                progress |= self.apply(node, appid, None);
                            }
                        }
                        Ok(progress)
                    }
                    code => Err(code_error(node, Endpoint::Polls, code, &reply.message)),
                }
            }
        }
    }

    /// After a quiet hold: checks with one non-blocking `fetchs` that every app the client
    /// serves instances of (or keeps stale after a node switch) still exists. The reference server parks a poll whose app vanished
    /// *before* the poll arrived (and never reports a last cancel at all), so against it a
    /// client would otherwise keep serving a deleted app forever; sdkit's embedded registry
    /// answers such polls at once, and this check costs one request per quiet hold. `Ok(true)`
    /// when the check found a change.
    pub(super) async fn verify(&self, node: &str) -> Result<bool, Error> {
        let held: Vec<(String, i64)> = {
            let state = self.lock_state();
            state
                .apps
                .iter()
                .filter(|(_, e)| e.had_instances)
                .filter_map(|(a, e)| Some((a.clone(), e.cursor?)))
                .collect()
        };
        if held.is_empty() {
            return Ok(false);
        }
        let mut data = self
            .fetchs(node, held.iter().map(|(a, _)| a.clone()).collect())
            .await?;
        let mut progress = false;
        for (appid, cursor) in held {
            match data.remove(&appid) {
                None => {
                    debug!(%appid, "discovery: watched app vanished during a quiet poll");
                    progress |= self.apply(node, &appid, None);
                }
                Some(info) if info.latest_timestamp != cursor => {
                    progress |= self.apply(node, &appid, Some(info));
                }
                Some(_) => {}
            }
        }
        Ok(progress)
    }

    /// Records the answer for one appid (`None`: not found) and publishes it; `true` when the
    /// cursor moved (progress).
    pub(super) fn apply(&self, node: &str, appid: &str, info: Option<InstanceInfo>) -> bool {
        let (cursor, mut published) = match info {
            Some(info) => (info.latest_timestamp, Some(up_instances(info))),
            None => (0, None),
        };
        let mut too_many = None;
        if let Some(count) = published.as_ref().map(Vec::len)
            && count > self.config.max_instances
        {
            warn!(%appid, count, max = self.config.max_instances, "discovery: too many instances; keeping the last good set");
            published = None;
            too_many = Some(SourceError::new(Error::TooManyInstances {
                appid: appid.to_owned(),
                count,
                max: self.config.max_instances,
            }));
        }
        if appid == INFRA_DISCOVERY
            && self.config.self_discovery
            && let Some(instances) = &published
        {
            self.discovered(instances);
        }
        let mut state = self.lock_state();
        if state.cursor_node.as_deref() != Some(node) {
            return false;
        }
        let grace = self.config.unknown_grace;
        let in_grace = self.in_grace(&state);
        let Some(entry) = state.apps.get_mut(appid) else {
            return false;
        };
        if too_many.is_none()
            && in_grace
            && entry.had_instances
            && published.as_ref().is_none_or(Vec::is_empty)
        {
            // Not proof yet: the node may not have the registrations back. Keep the last set
            // (stale); the app stays in the long poll from cursor 0 (an early answer is spaced
            // by the quiet backoff) and in the check after a quiet hold.
            debug!(%appid, %node, "discovery: app unknown just after a node switch; keeping the last set");
            entry.cursor = Some(0);
            entry.tx.send_replace(AppState::Failed(SourceError::new(
                Error::UnknownAfterSwitch {
                    appid: appid.to_owned(),
                    node: node.to_owned(),
                    grace,
                },
            )));
            return false;
        }
        let progress = entry.cursor != Some(cursor);
        entry.cursor = Some(cursor);
        entry.tx.send_replace(match (published, too_many) {
            (_, Some(error)) => AppState::Failed(error),
            (Some(instances), None) => {
                entry.had_instances = !instances.is_empty();
                AppState::Instances(Arc::new(instances))
            }
            (None, None) => {
                entry.had_instances = false;
                AppState::NotFound
            }
        });
        progress
    }

    /// Replaces the node list with the own-zone `http://` addresses of `infra.discovery`.
    pub(super) fn discovered(&self, instances: &[WireInstance]) {
        let zone = &self.config.zone;
        let mut nodes: Vec<String> = Vec::new();
        for instance in instances
            .iter()
            .filter(|i| zone.is_empty() || &i.zone == zone)
        {
            for addr in &instance.addrs {
                if let Some(rest) = addr.strip_prefix("http://") {
                    let Some(node) = valid_node(rest) else {
                        warn!(addr = %addr.escape_debug(), "infra.discovery lists an address that is not http://host:port; ignored");
                        continue;
                    };
                    if !nodes.contains(&node) {
                        nodes.push(node);
                    }
                }
            }
        }
        if nodes.is_empty() {
            debug!("infra.discovery lists no node of this zone; keeping the node list");
            return;
        }
        if nodes.len() > self.config.max_nodes {
            warn!(
                count = nodes.len(),
                max = self.config.max_nodes,
                "infra.discovery lists more nodes than max_nodes; keeping the node list"
            );
            return;
        }
        let mut list = self.nodes();
        if list.set_discovered(nodes) {
            info!(nodes = ?list.discovered, "discovery nodes updated");
        }
    }

    /// Marks every watched appid as failing and forgets every cursor.
    pub(super) fn failed(&self, error: &SourceError) {
        let mut state = self.lock_state();
        state.cursor_node = None;
        for entry in state.apps.values_mut() {
            entry.cursor = None;
            entry.tx.send_replace(AppState::Failed(error.clone()));
        }
    }
}

/// The loop: one request at a time, every await cancellable by shutdown.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut backoff = inner.config.backoff.start();
    // Spaces consecutive quiet answers (no progress, well before the hold): see `Config`.
    let mut quiet = inner.config.backoff.start();
    loop {
        let node = inner.nodes().pick(inner.config.rotate_interval);
        let started = tokio::time::Instant::now();
        let outcome = tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => break,
            r = inner.step(&node) => r,
        };
        match outcome {
            Ok(progress) => {
                if backoff.failures() > 0 {
                    info!(%node, "discovery node answers again");
                }
                backoff.reset();
                inner.nodes().succeeded(&node);
                if progress || started.elapsed() >= inner.config.min_poll_interval {
                    quiet.reset();
                    continue;
                }
                let delay = quiet.next_delay();
                debug!(%node, ?delay, "discovery: an early answer without progress; pausing");
                tokio::select! {
                    () = inner.shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                    () = inner.wake.notified() => {}
                }
            }
            Err(error) => {
                let delay = backoff.next_delay();
                warn!(%error, failures = backoff.failures(), ?delay, "discovery poll failed; rotating node");
                inner.nodes().failed(&node);
                inner.failed(&SourceError::new(error));
                // A new watch cuts the wait short, so it is answered as soon as a node is.
                tokio::select! {
                    () = inner.shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                    () = inner.wake.notified() => {}
                }
            }
        }
    }
    debug!(watcher = %inner.watcher_id, "discovery poll loop stopped");
}

/// `host:port` when `rest` (what follows `http://`) is exactly that: a non-empty host of
/// letters, digits, `.`, `-`, `_` (or a bracketed IPv6 address) and a non-zero port.
pub(super) fn valid_node(rest: &str) -> Option<String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ok_host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    ok_host.then(|| normalize_node(&format!("{host}:{port}")))
}

/// The UP instances of every zone, zone filled from the map key when absent.
pub(super) fn up_instances(info: InstanceInfo) -> Vec<WireInstance> {
    let mut out = Vec::new();
    for (zone, instances) in info.instances {
        for mut instance in instances {
            if instance.status != Status::Up.as_u32() {
                continue;
            }
            if instance.zone.is_empty() {
                instance.zone.clone_from(&zone);
            }
            out.push(instance);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_port_addresses_are_valid_nodes() {
        assert_eq!(
            valid_node("10.0.0.1:7171").as_deref(),
            Some("10.0.0.1:7171")
        );
        assert_eq!(
            valid_node("node-a.example:80/").as_deref(),
            Some("node-a.example:80")
        );
        assert!(valid_node("[::1]:7171").is_some());
        for bad in [
            "",
            "h",
            "h:",
            ":80",
            "h:0",
            "h:99999",
            "h:80/path",
            "u@h:80",
            "h h:80",
            "h:80?x",
            "[zz]:80",
        ] {
            assert_eq!(valid_node(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn up_instances_are_flattened() {
        let json = r#"{"instances":{"z1":[{"hostname":"a","status":1,"addrs":["grpc://h:1,http://h:2"]},{"hostname":"b","status":2}],"z2":[]},"latest_timestamp":9007199254740993}"#;
        let info: InstanceInfo = serde_json::from_str(json).unwrap();
        assert_eq!(info.latest_timestamp, 9_007_199_254_740_993);
        let up = up_instances(info);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].zone, "z1");
        assert_eq!(up[0].addrs, ["grpc://h:1", "http://h:2"]);
    }
}
