//! The ZooKeeper instancer: watches the children of one service path and publishes each new
//! complete set of instances into the shared cache.
//!
//! The loop, per session:
//!
//! 1. **Watch first**: a persistent recursive watch on the path (`addWatch`, ZooKeeper 3.6+).
//!    It is accepted for a path that does not exist yet, so a service path created later is
//!    seen at once (kratos users report plain watches that stop in that case).
//! 2. **Read**: list the children and read every child's data (pipelined); publish the set. A
//!    missing path is an empty set. A child whose data is neither JSON nor `host:port` (see
//!    [`value`]) is skipped with a warning; the rest is published.
//! 3. **Apply events**: a child created or changed is read again, a child deleted is dropped,
//!    the path deleted empties the set; each change is published.
//! 4. **Disconnected**: an error event (subscribers keep the last good set) while the client
//!    fails over to another server; on reconnection everything is read again (events during
//!    the disconnection can be lost, ZOOKEEPER-4698).
//! 5. **Session ended** (expired, closed): an error event, then a new session and step 1.
//!    Failing requests are retried with backoff; nothing is ever given up (go-kit's ZooKeeper
//!    instancer freezes after an error).
//!
//! Stopping cancels the task at once; nothing is published after
//! [`stop`](sdkit_core::Instancer::stop) returns.

use std::collections::BTreeMap;
use std::future::Future;

use sdkit_core::backoff::BackoffState;
use sdkit_core::instancer::sleep_or_cancel;
use sdkit_core::{
    CancellationToken, Instance, InstanceCache, SourceError, Subscription, TaskInstancer,
};
use zk::{AddWatchMode, EventType, SessionState, WatchedEvent};
use zookeeper_client as zk;

use crate::client::Client;
use crate::config::{Config, InstancerConfig, check_path};
use crate::error::Error;
use crate::value;

/// Watches one service path in ZooKeeper. See the [module docs](self).
///
/// ```no_run
/// use std::time::Duration;
/// use sdkit_core::Instancer as _;
/// use sdkit_zookeeper::{Config, Instancer, InstancerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::new(["127.0.0.1:2181", "127.0.0.1:2182", "127.0.0.1:2183"]);
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
    path: String,
    _client: Client,
}

impl Instancer {
    /// Watches `config.path()` through `client` (shared with other instancers and registrars).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the path is not an absolute node path.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn new(client: &Client, config: InstancerConfig) -> Result<Instancer, Error> {
        check_path(config.path())?;
        let path = config.path().to_owned();
        let (client_task, path_task, backoff) = (client.clone(), path.clone(), config.backoff());
        let task = TaskInstancer::spawn("zookeeper", move |cache, token| {
            Watch {
                client: client_task,
                children_of: format!("{path_task}/"),
                path: path_task,
                backoff,
                cache,
                token,
                instances: BTreeMap::new(),
            }
            .run()
        });
        Ok(Instancer {
            task,
            path,
            _client: client.clone(),
        })
    }

    /// Watches with a client of its own.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a configuration is unusable (no network I/O happens here).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn from_config(config: Config, instancer: InstancerConfig) -> Result<Instancer, Error> {
        Instancer::new(&Client::new(config)?, instancer)
    }

    /// The watched path.
    pub fn path(&self) -> &str {
        &self.path
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

/// What the loop does after an event.
enum Step {
    /// Wait for the next event.
    Next,
    /// Add the watch again and read everything (after a reconnection).
    Rewatch,
}

/// The state of one instancer's loop.
struct Watch {
    client: Client,
    path: String,
    /// `path` + `/`: the prefix of every child path.
    children_of: String,
    backoff: sdkit_core::Backoff,
    cache: InstanceCache,
    token: CancellationToken,
    /// Instances by child name (only children whose data decoded).
    instances: BTreeMap<String, Instance>,
}

impl Watch {
    async fn run(mut self) {
        let mut backoff = self.backoff.start();
        loop {
            match self.watch_session(&mut backoff).await {
                None => return,
                Some(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(path = %self.path, %error, ?delay, failures = backoff.failures(), "zookeeper: watch failing; retrying");
                    self.cache.error(SourceError::new(error));
                    if !sleep_or_cancel(&self.token, delay).await {
                        return;
                    }
                }
            }
        }
    }

    /// Watches through the current session until it fails (`Some(error)`) or stop is requested
    /// (`None`).
    async fn watch_session(&mut self, backoff: &mut BackoffState) -> Option<Error> {
        let token = self.token.clone();
        let session = match or_cancel(&token, self.client.session()).await? {
            Ok(session) => session,
            Err(error) => return Some(error),
        };
        // The persistent watch is added again after every reconnection: the client's automatic
        // re-registration was seen to lose it when the session moved to another server.
        loop {
            let watching = self.client.call(
                "watch",
                &self.path,
                session.watch(&self.path, AddWatchMode::PersistentRecursive),
            );
            let mut watcher = match or_cancel(&token, watching).await? {
                Ok(watcher) => watcher,
                Err(error) => return Some(error),
            };
            if let Err(error) = or_cancel(&token, self.resync(&session)).await? {
                return Some(error);
            }
            backoff.reset();
            loop {
                let event = or_cancel(&token, watcher.changed()).await?;
                match or_cancel(&token, self.apply(&session, event)).await? {
                    Ok(Step::Next) => {}
                    Ok(Step::Rewatch) => break,
                    Err(error) => return Some(error),
                }
            }
        }
    }

    /// Applies one watch event. An `Err` ends this session's watch (after a terminal session
    /// event the watcher must not be polled again).
    async fn apply(&mut self, session: &zk::Client, event: WatchedEvent) -> Result<Step, Error> {
        let session_id = session.session_id().0;
        if event.event_type == EventType::Session {
            return match event.session_state {
                SessionState::Disconnected => {
                    tracing::warn!(path = %self.path, session = format_args!("{session_id:#x}"), "zookeeper: disconnected; keeping the last set");
                    self.cache.error(SourceError::new(Error::Disconnected {
                        session: session_id,
                    }));
                    Ok(Step::Next)
                }
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    tracing::info!(path = %self.path, session = format_args!("{session_id:#x}"), "zookeeper: reconnected; watching and reading the path again");
                    Ok(Step::Rewatch)
                }
                state => Err(Error::SessionEnded {
                    session: session_id,
                    state: state.to_string(),
                }),
            };
        }
        if event.path == self.path {
            match event.event_type {
                EventType::NodeDeleted => {
                    self.instances.clear();
                    self.publish();
                }
                EventType::NodeCreated => self.resync(session).await?,
                _ => {}
            }
            return Ok(Step::Next);
        }
        let Some(name) = event.path.strip_prefix(&self.children_of) else {
            return Ok(Step::Next);
        };
        if name.contains('/') {
            return Ok(Step::Next); // a grandchild: not an instance
        }
        let name = name.to_owned();
        match event.event_type {
            EventType::NodeDeleted => {
                self.instances.remove(&name);
            }
            EventType::NodeCreated | EventType::NodeDataChanged => {
                let path = event.path.clone();
                let read = self
                    .client
                    .call("get", &path, session.get_data(&path))
                    .await;
                match read {
                    Ok((data, _)) => self.insert(name, &data),
                    Err(error) if is_no_node(&error) => {
                        self.instances.remove(&name);
                    }
                    Err(error) => return Err(error),
                }
            }
            _ => return Ok(Step::Next),
        }
        self.publish();
        Ok(Step::Next)
    }

    /// Reads the whole path again (children, then every child's data, pipelined) and publishes.
    async fn resync(&mut self, session: &zk::Client) -> Result<(), Error> {
        let listed = self
            .client
            .call("list", &self.path, session.list_children(&self.path))
            .await;
        let children = match listed {
            Ok(children) => children,
            Err(error) if is_no_node(&error) => {
                tracing::debug!(path = %self.path, "zookeeper: the path does not exist (yet); watching for it");
                self.instances.clear();
                self.publish();
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let max = self.client.config().max_children();
        if children.len() > max {
            return Err(Error::Config(format!(
                "{} has {} children, more than max_children = {max}",
                self.path,
                children.len()
            )));
        }
        let paths: Vec<String> = children
            .iter()
            .map(|name| format!("{}{name}", self.children_of))
            .collect();
        let reads = paths
            .iter()
            .map(|path| self.client.call("get", path, session.get_data(path)));
        let results = futures_util::future::join_all(reads).await;
        self.instances.clear();
        for (name, result) in children.into_iter().zip(results) {
            match result {
                Ok((data, _)) => self.insert(name, &data),
                Err(error) if is_no_node(&error) => {} // deleted since the listing
                Err(error) => return Err(error),
            }
        }
        tracing::debug!(path = %self.path, count = self.instances.len(), "zookeeper: read the path");
        self.publish();
        Ok(())
    }

    /// Decodes child `name`'s data into the set, or drops the child with a warning.
    fn insert(&mut self, name: String, data: &[u8]) {
        let max = self.client.config().max_value_size();
        if data.len() > max {
            tracing::warn!(path = %self.path, child = %name, size = data.len(), max, "zookeeper: skipping an oversized child");
            self.instances.remove(&name);
            return;
        }
        match value::decode(value::instance_id(&name), data) {
            Ok(instance) => {
                self.instances.insert(name, instance);
            }
            Err(error) => {
                tracing::warn!(path = %self.path, child = %name, %error, "zookeeper: skipping a child that is neither JSON nor host:port");
                self.instances.remove(&name);
            }
        }
    }

    /// Publishes the current set (also clearing a previous error).
    fn publish(&self) {
        self.cache
            .update(self.instances.values().cloned().collect());
    }
}

/// Runs `fut` unless `token` fires first.
async fn or_cancel<T>(token: &CancellationToken, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        _ = token.cancelled() => None,
        value = fut => Some(value),
    }
}

/// `true` when `error` is ZooKeeper's "no node".
pub(crate) fn is_no_node(error: &Error) -> bool {
    matches!(error.zookeeper_error(), Some(zk::Error::NoNode))
}
