//! The long-poll loop: what to ask next ([`Plan`](super::Plan)), one step of `fetchs` or
//! `polls`, the `-304` verification, applying answers to the watched apps and the node list.

use std::collections::BTreeMap;
use std::sync::Arc;

use sdkit_core::SourceError;
use sdkit_discovery_proto::args::{FetchsArgs, PollsArgs};
use sdkit_discovery_proto::{
    Code, Endpoint, INFRA_DISCOVERY, Instance as WireInstance, InstanceInfo, Reply, Status,
    StatusFilter,
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

    /// One step of the loop against `node`.
    pub(super) async fn step(&self, node: &str) -> Result<(), Error> {
        let wake = self.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        match self.plan(node) {
            Plan::Idle => {
                wake.await;
                Ok(())
            }
            Plan::Fetch(appids) => {
                let args = FetchsArgs {
                    env: self.config.env.clone(),
                    appids: appids.clone(),
                    status: StatusFilter::UP.0,
                    zone: String::new(),
                };
                let reply: Reply<BTreeMap<String, InstanceInfo>> = self
                    .call(
                        node,
                        Endpoint::Fetchs,
                        &args.to_form(),
                        self.config.request_timeout,
                    )
                    .await?;
                if reply.code != Code::OK {
                    return Err(code_error(
                        node,
                        Endpoint::Fetchs,
                        reply.code,
                        &reply.message,
                    ));
                }
                let mut data = reply.data.into_value().unwrap_or_default();
                for appid in &appids {
                    let info = data.remove(appid);
                    self.apply(node, appid, info);
                }
                Ok(())
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
                        return Ok(());
                    }
                    reply = poll => reply?,
                };
                match reply.code {
                    Code::NOT_MODIFIED => self.verify(node).await,
                    Code::OK => {
                        let misses = reply.error.unwrap_or_default();
                        for (appid, info) in reply.data.into_value().unwrap_or_default() {
                            if args.appids.contains(&appid) {
                                self.apply(node, &appid, Some(info));
                            }
                        }
                        for appid in misses.appids() {
                            if args.appids.contains(appid) {
                                self.apply(node, appid, None);
                            }
                        }
                        Ok(())
                    }
                    code => Err(code_error(node, Endpoint::Polls, code, &reply.message)),
                }
            }
        }
    }

    /// After a quiet hold: checks with one non-blocking `fetchs` that every app the client
    /// serves instances of still exists. The reference server parks a poll whose app vanished
    /// *before* the poll arrived (and never reports a last cancel at all), so against it a
    /// client would otherwise keep serving a deleted app forever; sdkit's embedded registry
    /// answers such polls at once, and this check costs one request per quiet hold.
    pub(super) async fn verify(&self, node: &str) -> Result<(), Error> {
        let held: Vec<(String, i64)> = {
            let state = self.lock_state();
            state
                .apps
                .iter()
                .filter(|(_, e)| matches!(&*e.tx.borrow(), AppState::Instances(v) if !v.is_empty()))
                .filter_map(|(a, e)| Some((a.clone(), e.cursor?)))
                .collect()
        };
        if held.is_empty() {
            return Ok(());
        }
        let args = FetchsArgs {
            env: self.config.env.clone(),
            appids: held.iter().map(|(a, _)| a.clone()).collect(),
            status: StatusFilter::UP.0,
            zone: String::new(),
        };
        let reply: Reply<BTreeMap<String, InstanceInfo>> = self
            .call(
                node,
                Endpoint::Fetchs,
                &args.to_form(),
                self.config.request_timeout,
            )
            .await?;
        if reply.code != Code::OK {
            return Err(code_error(
                node,
                Endpoint::Fetchs,
                reply.code,
                &reply.message,
            ));
        }
        let mut data = reply.data.into_value().unwrap_or_default();
        for (appid, cursor) in held {
            match data.remove(&appid) {
                None => {
                    debug!(%appid, "discovery: watched app vanished during a quiet poll");
                    self.apply(node, &appid, None);
                }
                Some(info) if info.latest_timestamp != cursor => {
                    self.apply(node, &appid, Some(info));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Records the answer for one appid (`None`: not found) and publishes it.
    pub(super) fn apply(&self, node: &str, appid: &str, info: Option<InstanceInfo>) {
        let (cursor, published) = match info {
            Some(info) => (info.latest_timestamp, Some(up_instances(info))),
            None => (0, None),
        };
        if appid == INFRA_DISCOVERY
            && self.config.self_discovery
            && let Some(instances) = &published
        {
            self.discovered(instances);
        }
        let mut state = self.lock_state();
        if state.cursor_node.as_deref() != Some(node) {
            return;
        }
        let Some(entry) = state.apps.get_mut(appid) else {
            return;
        };
        entry.cursor = Some(cursor);
        entry.tx.send_replace(match published {
            Some(instances) => AppState::Instances(Arc::new(instances)),
            None => AppState::NotFound,
        });
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
                    let node = normalize_node(rest);
                    if !node.is_empty() && !nodes.contains(&node) {
                        nodes.push(node);
                    }
                }
            }
        }
        if nodes.is_empty() {
            debug!("infra.discovery lists no node of this zone; keeping the node list");
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
    loop {
        let node = inner.nodes().pick(inner.config.rotate_interval);
        let outcome = tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => break,
            r = inner.step(&node) => r,
        };
        match outcome {
            Ok(()) => {
                if backoff.failures() > 0 {
                    info!(%node, "discovery node answers again");
                }
                backoff.reset();
                inner.nodes().succeeded(&node);
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
