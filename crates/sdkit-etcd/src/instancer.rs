//! The etcd instancer: lists a key prefix, then watches it, and publishes each new complete set
//! of instances into the shared cache.
//!
//! The loop:
//!
//! 1. **List** the prefix (as a directory: `/services/web/`, never `/services/webapp`) in pages
//!    at one revision `R`; decode every value ([`value`](mod@crate::value)), skipping (with a
//!    warning) the ones that are neither JSON nor `host:port`; publish the set.
//! 2. **Watch** from `R + 1` with previous values and progress notifications, apply each event
//!    to the local map, and publish the new set after each response. The last seen revision
//!    advances with every event and every progress notification.
//! 3. When the watch **ends or fails** (a member died, the stream was reset, etcd cancelled it),
//!    publish an error (subscribers keep the last good set), wait with backoff, and re-create it
//!    from the last seen revision + 1: no event is lost or applied twice. When that revision
//!    was **compacted**, re-list and start again from step 1.
//! 4. A **silent** stream is detected: after `watch_progress_interval` without a message the
//!    loop asks etcd for a progress notification, and when none comes within
//!    `watch_progress_timeout` it declares the watch dead and re-creates it (HTTP/2 keep-alive
//!    pings also drop a dead connection).
//!
//! Stopping cancels the task at once (an in-flight list or watch included); nothing is published
//! after [`stop`](sdkit_core::Instancer::stop) returns.

use std::collections::BTreeMap;
use std::future::Future;

use etcd_client::{EventType, KeyValue, WatchResponse, WatchStream};
use sdkit_core::{
    Backoff, CancellationToken, FailureLoop, Instance, InstanceCache, Subscription, TaskInstancer,
};

use crate::client::Client;
use crate::config::{Config, InstancerConfig};
use crate::error::Error;
use crate::value;

/// Watches one service prefix in etcd. See the [module docs](self).
///
/// ```no_run
/// use std::time::Duration;
/// use sdkit_core::Instancer as _;
/// use sdkit_etcd::{Config, Instancer, InstancerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::new(["127.0.0.1:2379"]);
/// let instancer = Instancer::from_config(config, InstancerConfig::new("/services/web"))?;
/// let mut sub = instancer.subscribe();
/// let snapshot = sub.ready(Duration::from_secs(5)).await?;
/// println!("{} instances", snapshot.len());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Instancer {
    task: TaskInstancer,
    prefix: String,
}

impl Instancer {
    /// Watches `config.prefix` through a shared `client` (its configuration gives the timing).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the prefix is the root (no network I/O happens here).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn new(client: &Client, config: InstancerConfig) -> Result<Self, Error> {
        config.validate()?;
        let prefix_dir = config.prefix_dir();
        let dir = prefix_dir.clone();
        let client = client.clone();
        let task = TaskInstancer::spawn_service("etcd", &prefix_dir, move |cache, token| {
            Watcher::new(client, dir, cache, token).run(config.backoff)
        });
        Ok(Instancer {
            task,
            prefix: prefix_dir,
        })
    }

    /// Watches `watch.prefix` with a client of its own, built from `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a configuration is unusable (no network I/O happens here).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn from_config(config: Config, watch: InstancerConfig) -> Result<Self, Error> {
        Instancer::new(&Client::new(config)?, watch)
    }

    /// The watched prefix, as a directory (ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The cache this instancer publishes into.
    pub fn cache(&self) -> &InstanceCache {
        self.task.cache()
    }
}

impl sdkit_core::Instancer for Instancer {
    fn subscribe(&self) -> Subscription {
        self.task.subscribe()
    }

    fn stop(&self) {
        self.task.stop();
    }
}

/// Why a watch stream stopped being consumed.
enum Outcome {
    /// Stop was requested.
    Cancelled,
    /// The start revision was compacted: re-list.
    Compacted { compact_revision: i64 },
    /// The stream ended or failed: re-create it from the last seen revision + 1.
    Ended(Error),
}

/// The state of one instancer's loop.
struct Watcher {
    client: Client,
    prefix_dir: String,
    cache: InstanceCache,
    token: CancellationToken,
    /// Instances by key (only keys whose value decoded).
    instances: BTreeMap<Vec<u8>, Instance>,
    /// The last revision whose events are all applied; 0 = must list.
    revision: i64,
}

impl Watcher {
    fn new(
        client: Client,
        prefix_dir: String,
        cache: InstanceCache,
        token: CancellationToken,
    ) -> Self {
        Watcher {
            client,
            prefix_dir,
            cache,
            token,
            instances: BTreeMap::new(),
            revision: 0,
        }
    }

    /// Runs `fut` unless stop is requested first.
    async fn or_cancel<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            _ = self.token.cancelled() => None,
            value = fut => Some(value),
        }
    }

    async fn run(mut self, backoff: Backoff) {
        let mut backoff = FailureLoop::new("etcd", self.prefix_dir.clone(), backoff);
        loop {
            if self.revision == 0 {
                match self.or_cancel(self.list()).await {
                    None => return,
                    Some(Ok((revision, instances))) => {
                        self.instances = instances;
                        self.revision = revision;
                        self.publish();
                        tracing::debug!(prefix = %self.prefix_dir, revision, count = self.instances.len(), "etcd: listed");
                    }
                    Some(Err(error)) => {
                        if !self.fail(error, &mut backoff).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let stream = match self
                .or_cancel(self.client.watch(&self.prefix_dir, self.revision + 1))
                .await
            {
                None => return,
                Some(Ok(stream)) => stream,
                Some(Err(error)) => {
                    if !self.fail(error, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            };
            match self.consume(stream, &mut backoff).await {
                Outcome::Cancelled => return,
                Outcome::Compacted { compact_revision } => {
                    tracing::warn!(
                        prefix = %self.prefix_dir,
                        revision = self.revision,
                        compact_revision,
                        "etcd: watch revision was compacted; listing the prefix again"
                    );
                    self.revision = 0;
                }
                Outcome::Ended(error) => {
                    if !self.fail(error, &mut backoff).await {
                        return;
                    }
                }
            }
        }
    }

    /// Publishes `error` (keeping the last good set) and waits the next backoff delay; `false`
    /// when stop was requested meanwhile.
    async fn fail(&self, error: Error, backoff: &mut FailureLoop) -> bool {
        backoff.fail(&self.cache, &self.token, error).await
    }

    /// Publishes the current set (also clearing a previous error).
    fn publish(&self) {
        self.cache
            .update(self.instances.values().cloned().collect());
    }

    /// Lists the prefix page by page at one revision.
    async fn list(&self) -> Result<(i64, BTreeMap<Vec<u8>, Instance>), Error> {
        let mut instances = BTreeMap::new();
        let mut revision = 0;
        let mut from = self.prefix_dir.as_bytes().to_vec();
        loop {
            let page = self
                .client
                .list_page(&self.prefix_dir, &from, revision)
                .await?;
            if revision == 0 {
                revision = page.revision;
            }
            for kv in &page.kvs {
                if let Some(instance) = self.decode(kv) {
                    instances.insert(kv.key().to_vec(), instance);
                }
            }
            match page.kvs.last() {
                Some(last) if page.more => {
                    // Continue right after the last key of this page.
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok((revision, instances))
    }

    /// Decodes one key-value, or logs why it is skipped.
    fn decode(&self, kv: &KeyValue) -> Option<Instance> {
        let key = kv.key();
        let id = key.strip_prefix(self.prefix_dir.as_bytes())?;
        let Ok(id) = std::str::from_utf8(id) else {
            tracing::warn!(prefix = %self.prefix_dir, key = %String::from_utf8_lossy(key), "etcd: skipping a key that is not UTF-8");
            return None;
        };
        if id.is_empty() {
            return None;
        }
        let max = self.client.config().max_value_size;
        if kv.value().len() > max {
            tracing::warn!(prefix = %self.prefix_dir, id, size = kv.value().len(), max, "etcd: skipping an oversized value");
            return None;
        }
        match value::decode(id, kv.value()) {
            Ok(instance) => Some(instance),
            Err(error) => {
                tracing::warn!(prefix = %self.prefix_dir, %error, "etcd: skipping a value that is neither JSON nor host:port");
                None
            }
        }
    }

    /// Reads the watch stream until it ends, is compacted, goes silent, or stop is requested.
    async fn consume(&mut self, mut stream: WatchStream, backoff: &mut FailureLoop) -> Outcome {
        let config = self.client.config().clone();
        let mut probing = false;
        loop {
            let wait = if probing {
                config.watch_progress_timeout
            } else {
                config.watch_progress_interval
            };
            let message = tokio::select! {
                _ = self.token.cancelled() => return Outcome::Cancelled,
                message = tokio::time::timeout(wait, stream.message()) => message,
            };
            let response = match message {
                Err(_) if probing => {
                    return Outcome::Ended(Error::WatchStalled {
                        prefix: self.prefix_dir.clone(),
                        waited: wait,
                    });
                }
                Err(_) => {
                    // Silent for a while: ask for a progress notification to prove liveness.
                    if let Err(e) = stream.request_progress().await {
                        return Outcome::Ended(self.ended(format!("progress request failed: {e}")));
                    }
                    probing = true;
                    continue;
                }
                Ok(Err(e)) => return Outcome::Ended(self.ended(e.to_string())),
                Ok(Ok(None)) => {
                    return Outcome::Ended(self.ended("stream closed by etcd".to_owned()));
                }
                Ok(Ok(Some(response))) => response,
            };
            probing = false;
            if let Some(outcome) = self.apply(&response) {
                return outcome;
            }
            if response.created() {
                // The watch is established: clear a previous error and start backoff afresh.
                backoff.success();
                self.publish();
            }
        }
    }

    fn ended(&self, reason: String) -> Error {
        Error::WatchEnded {
            prefix: self.prefix_dir.clone(),
            reason,
        }
    }

    /// Applies one watch response; `Some` when the watch is over.
    fn apply(&mut self, response: &WatchResponse) -> Option<Outcome> {
        if response.compact_revision() > 0 {
            return Some(Outcome::Compacted {
                compact_revision: response.compact_revision(),
            });
        }
        if response.canceled() {
            return Some(Outcome::Ended(
                self.ended(format!("cancelled by etcd: {}", response.cancel_reason())),
            ));
        }
        let events = response.events();
        if events.is_empty() {
            // A progress notification: every event up to the header revision was delivered.
            // (The creation response is not one: a watch catching up gets it before the events.)
            if !response.created()
                && let Some(header) = response.header()
            {
                self.revision = self.revision.max(header.revision());
            }
            return None;
        }
        for event in events {
            let Some(kv) = event.kv() else { continue };
            self.revision = self.revision.max(kv.mod_revision());
            if !kv.key().starts_with(self.prefix_dir.as_bytes()) {
                continue;
            }
            match event.event_type() {
                EventType::Put => match self.decode(kv) {
                    Some(instance) => {
                        self.instances.insert(kv.key().to_vec(), instance);
                    }
                    None => {
                        self.instances.remove(kv.key());
                    }
                },
                EventType::Delete => {
                    self.instances.remove(kv.key());
                }
            }
        }
        self.publish();
        None
    }
}
