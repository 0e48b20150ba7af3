//! Noticing that the node in use restarted although no request failed.
//!
//! A registry restarted between two requests (its parked polls answered `-304` on the way
//! down, the next request reached the new process at once) answers "unknown" for every app
//! until the registrars register again, within one renew interval: not proof that the apps
//! have no instances. The protocol has no restart counter, but every node registers itself as
//! `infra.discovery` when it starts, which sets that app's cursor (`latest_timestamp`, a
//! token of the node that issued it). The client takes that cursor as the node's *epoch*: it
//! rides along in every `fetchs` (one more appid), and an answer that would empty an app which
//! had instances is first checked against it. A changed epoch counts as a node switch: every
//! cursor is reset and the grace period (`unknown_grace`) starts. Whatever else changes that
//! cursor (a discovery node joining or leaving) only starts a grace period early, which delays
//! an empty set, never a non-empty one.

use std::collections::BTreeMap;

use sdkit_discovery_proto::args::FetchsArgs;
use sdkit_discovery_proto::{Code, Endpoint, INFRA_DISCOVERY, InstanceInfo, Reply, StatusFilter};
use tracing::info;

use super::Inner;
use super::transport::code_error;
use crate::Error;

impl Inner {
    /// One non-blocking `fetchs` of `appids` (plus `infra.discovery`, for the epoch) on
    /// `node`: the data of the apps the node knows. Records the epoch before returning, so a
    /// restart it reveals is a node switch by the time the answers are applied.
    pub(super) async fn fetchs(
        &self,
        node: &str,
        mut appids: Vec<String>,
    ) -> Result<BTreeMap<String, InstanceInfo>, Error> {
        if !appids.iter().any(|a| a == INFRA_DISCOVERY) {
            appids.push(INFRA_DISCOVERY.to_owned());
        }
        let args = FetchsArgs {
            env: self.config.env.clone(),
            appids,
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
        let data = reply.data.into_value().unwrap_or_default();
        self.observe_epoch(node, data.get(INFRA_DISCOVERY).map(|i| i.latest_timestamp));
        Ok(data)
    }

    /// `true` when an answer that `appids` have no instances must first be checked against
    /// the node's epoch: one of them had instances and no grace period is running (nor
    /// configured: a zero `unknown_grace` turns the check off).
    pub(super) fn needs_epoch_check<'a>(
        &self,
        node: &str,
        mut appids: impl Iterator<Item = &'a str>,
    ) -> bool {
        if self.config.unknown_grace.is_zero() {
            return false;
        }
        let state = self.lock_state();
        if state.cursor_node.as_deref() != Some(node) || self.in_grace(&state) {
            return false;
        }
        appids.any(|a| state.apps.get(a).is_some_and(|e| e.had_instances))
    }

    /// Reads the node's epoch with one `fetchs` of `infra.discovery` (see the module docs).
    pub(super) async fn check_epoch(&self, node: &str) -> Result<(), Error> {
        self.fetchs(node, Vec::new()).await.map(drop)
    }

    /// Records `epoch` (`None`: the node does not know `infra.discovery` in this env) for
    /// `node`; a change since the node's last answer is a restart, handled as a node switch.
    /// `true` when it was one.
    pub(super) fn observe_epoch(&self, node: &str, epoch: Option<i64>) -> bool {
        let mut state = self.lock_state();
        if state.cursor_node.as_deref() != Some(node) {
            return false;
        }
        match state.epoch {
            None => {
                state.epoch = Some(epoch);
                false
            }
            Some(known) if known == epoch => false,
            Some(known) => {
                info!(%node, ?known, now = ?epoch, "discovery node restarted (its infra.discovery cursor changed); treating it as a node switch");
                state.epoch = Some(epoch);
                state.switched_at = Some(tokio::time::Instant::now());
                for entry in state.apps.values_mut() {
                    entry.cursor = None;
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Client, Config};

    // A current-thread runtime and no await: the client's loop never runs in between.
    #[tokio::test(flavor = "current_thread")]
    async fn a_changed_epoch_on_the_same_node_is_a_switch() {
        let client = Client::new(
            Config::default()
                .with_nodes(["127.0.0.1:1"])
                .with_env("dev")
                .with_self_discovery(false)
                .with_unknown_grace(Duration::from_secs(60)),
        )
        .unwrap();
        let _watch = client.watch("app");
        let inner = client.inner();
        {
            let mut state = inner.lock_state();
            state.cursor_node = Some("n:1".into());
            let entry = state.apps.get_mut("app").unwrap();
            entry.cursor = Some(7);
            entry.had_instances = true;
        }
        // The first answer of a node is the baseline; the same epoch again is no restart.
        assert!(!inner.observe_epoch("n:1", Some(10)));
        assert!(!inner.observe_epoch("n:1", Some(10)));
        assert!(inner.needs_epoch_check("n:1", ["app"].into_iter()));
        assert!(!inner.needs_epoch_check("n:1", ["other"].into_iter()));
        // Another node's answer (a stale one) is ignored.
        assert!(!inner.observe_epoch("m:1", Some(11)));
        assert_eq!(inner.lock_state().apps["app"].cursor, Some(7));
        // A new epoch: cursors reset, the grace period runs (no further check needed).
        assert!(inner.observe_epoch("n:1", Some(12)));
        let state = inner.lock_state();
        assert_eq!(state.apps["app"].cursor, None);
        assert!(inner.in_grace(&state));
        drop(state);
        assert!(!inner.needs_epoch_check("n:1", ["app"].into_iter()));
        // The node forgetting `infra.discovery` is a change too.
        assert!(inner.observe_epoch("n:1", None));
        client.shutdown();
    }
}
