//! The ZooKeeper registrar: one instance as an ephemeral sequential node
//! `<path>/<id>-<sequence>`, on the shared keep-alive driver of `sdkit-core`.
//!
//! * **register**: create the ephemeral sequential node with the [JSON data](crate::value) (one
//!   round trip; the service path and its parents are created, persistent, only when missing).
//!   After a failed create — whose answer may have been lost in a failover while the node was
//!   made — the next successful one removes any other node of this instance owned by the same
//!   session, so the set stays exact;
//! * **renew** watches the node instead of polling it: it waits for the node's deletion, the
//!   session's end, or `verify_interval`, whichever comes first. A node **deleted behind the
//!   registrar's back**, or a **session that ended** (expired by the ensemble after a long
//!   partition, or closed), is "lost": the driver registers again, on a new session if needed —
//!   the node is back within about one request after the client learns of it. While
//!   disconnected, renew waits for the client to reconnect (the session and its node live on
//!   until the session timeout) instead of failing in a loop;
//! * **deregister** deletes the node (and any leftover duplicate) within `deregister_timeout`;
//!   dropping the registrar deregisters in the background. When the registrar owns its client,
//!   dropping it also closes the session, which removes the node at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sdkit_core::registrar::{
    BoxFuture, KeepAlive, KeepAliveConfig, Registration, RegistrationStatus, Renewal,
};
use sdkit_core::{BoxError, RegistrarError};
use zk::{CreateMode, EventType, SessionState};
use zookeeper_client as zk;

use crate::client::Client;
use crate::config::{Config, RegistrarConfig, check_path};
use crate::error::Error;
use crate::instancer::is_no_node;
use crate::value;

/// Registers one instance in ZooKeeper and keeps it there. See the [module docs](self).
///
/// ```no_run
/// use sdkit_core::{Instance, Registrar as _};
/// use sdkit_zookeeper::{Config, Registrar, RegistrarConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::new(["127.0.0.1:2181"]);
/// let instance = Instance::new("web-1", "10.0.0.1:8080");
/// let registrar = Registrar::from_config(config, RegistrarConfig::new("/services/web", instance))?;
/// registrar.register().await?; // /services/web/web-1-0000000000 = {"addr":"10.0.0.1:8080","weight":1}
/// // … serve …
/// registrar.deregister().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Registrar {
    inner: KeepAlive<Steps>,
}

impl Registrar {
    /// Registers `config.instance()` under `config.path()` through `client` (shared with other
    /// instancers and registrars: they share one session).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the path or the instance id is unusable (no network I/O happens
    /// here).
    pub fn new(client: &Client, config: RegistrarConfig) -> Result<Registrar, Error> {
        check_path(config.path())?;
        let id = config.instance().id();
        if id.is_empty() || id.contains('/') {
            return Err(Error::Config(format!(
                "instance id {id:?} must be non-empty and must not contain '/'"
            )));
        }
        // Renewals block on the node's watch; between two of them the driver pauses briefly.
        let keep_alive = KeepAliveConfig::new(Duration::from_secs(1))
            .with_backoff(config.backoff())
            .with_deregister_timeout(config.deregister_timeout());
        let steps = Steps {
            client: client.clone(),
            dir: config.path().to_owned(),
            prefix: config.node_prefix(),
            id: id.to_owned(),
            data: value::encode(config.instance()),
            verify_interval: config.verify_interval(),
            node: Mutex::new(None),
            uncertain: AtomicBool::new(false),
        };
        Ok(Registrar {
            inner: KeepAlive::new(Arc::new(steps), keep_alive),
        })
    }

    /// Registers with a client of its own (its session closes when the registrar is dropped).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a configuration is unusable.
    pub fn from_config(config: Config, registrar: RegistrarConfig) -> Result<Registrar, Error> {
        Registrar::new(&Client::new(config)?, registrar)
    }

    /// The path of the node currently registered, if any (`/services/web/web-1-0000000003`).
    pub fn node(&self) -> Option<String> {
        self.inner.steps().node().map(|n| n.path)
    }

    /// Where the registration stands.
    pub fn status(&self) -> RegistrationStatus {
        self.inner.status()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<RegistrationStatus> {
        self.inner.watch_status()
    }
}

impl sdkit_core::Registrar for Registrar {
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.inner.register()
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.inner.deregister()
    }
}

/// The node a registration created, and the session that owns it.
#[derive(Clone, Debug)]
struct Node {
    path: String,
    session: i64,
}

/// The wire steps of a ZooKeeper registration.
pub(crate) struct Steps {
    client: Client,
    /// The service path.
    dir: String,
    /// `<dir>/<id>-`: what the sequential node is created as.
    prefix: String,
    id: String,
    data: Vec<u8>,
    verify_interval: Duration,
    node: Mutex<Option<Node>>,
    /// Set when a create failed: it may have been applied all the same, so the next
    /// successful registration looks for a duplicate to remove.
    uncertain: AtomicBool,
}

impl std::fmt::Debug for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steps")
            .field("prefix", &self.prefix)
            .field("node", &self.node())
            .finish_non_exhaustive()
    }
}

impl Steps {
    fn node(&self) -> Option<Node> {
        self.node
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_node(&self, node: Option<Node>) -> Option<Node> {
        std::mem::replace(
            &mut *self.node.lock().unwrap_or_else(PoisonError::into_inner),
            node,
        )
    }

    async fn do_register(&self) -> Result<(), Error> {
        let session = self.client.session().await?;
        let created = match self.create(&session).await {
            // The service path does not exist yet: create it (and its parents), then the node.
            Err(error) if is_no_node(&error) => {
                let parents = CreateMode::Persistent.with_acls(self.client.acls());
                match self
                    .client
                    .call("mkdir", &self.dir, session.mkdir(&self.dir, &parents))
                    .await
                {
                    Ok(()) => self.create(&session).await,
                    Err(error) => Err(error),
                }
            }
            other => other,
        };
        let path = match created {
            Ok(path) => path,
            Err(error) => {
                // A create whose answer was lost may still have been applied.
                self.uncertain.store(true, Ordering::SeqCst);
                return Err(error);
            }
        };
        let session_id = session.session_id().0;
        self.set_node(Some(Node {
            path: path.clone(),
            session: session_id,
        }));
        tracing::info!(node = %path, session = format_args!("{session_id:#x}"), "zookeeper: registered");
        if self.uncertain.swap(false, Ordering::SeqCst)
            && let Err(error) = self.sweep(&session, Some(&path)).await
        {
            self.uncertain.store(true, Ordering::SeqCst);
            tracing::warn!(%error, "zookeeper: could not check for duplicate nodes");
        }
        Ok(())
    }

    /// Creates the ephemeral sequential node; returns its path.
    async fn create(&self, session: &zk::Client) -> Result<String, Error> {
        let mode = CreateMode::EphemeralSequential.with_acls(self.client.acls());
        let (_, sequence) = self
            .client
            .call(
                "create",
                &self.prefix,
                session.create(&self.prefix, &self.data, &mode),
            )
            .await?;
        Ok(format!("{}{sequence}", self.prefix))
    }

    /// Deletes this instance's nodes owned by `session`, except `keep`.
    async fn sweep(&self, session: &zk::Client, keep: Option<&str>) -> Result<(), Error> {
        let children = match self
            .client
            .call("list", &self.dir, session.list_children(&self.dir))
            .await
        {
            Ok(children) => children,
            Err(error) if is_no_node(&error) => return Ok(()),
            Err(error) => return Err(error),
        };
        let owner = session.session_id().0;
        for name in children {
            if value::instance_id(&name) != self.id || name == self.id {
                continue;
            }
            let path = format!("{}/{name}", self.dir);
            if Some(path.as_str()) == keep {
                continue;
            }
            let stat = self
                .client
                .call("stat", &path, session.check_stat(&path))
                .await?;
            if stat.is_some_and(|s| s.ephemeral_owner == owner) {
                tracing::info!(node = %path, "zookeeper: removing a duplicate node of this registration");
                match self
                    .client
                    .call("delete", &path, session.delete(&path, None))
                    .await
                {
                    Ok(()) => {}
                    Err(error) if is_no_node(&error) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    async fn do_renew(&self) -> Result<Renewal, Error> {
        let Some(node) = self.node() else {
            return Ok(Renewal::Lost);
        };
        let session = self.client.session().await?;
        if session.session_id().0 != node.session {
            tracing::warn!(node = %node.path, "zookeeper: the session owning the node ended; registering again");
            return Ok(Renewal::Lost);
        }
        let mut state = session.state_watcher();
        if state.state() == SessionState::Disconnected {
            // The session (and the node) may well live on: wait for the reconnection or the end.
            tokio::select! {
                _ = state.changed() => {}
                _ = tokio::time::sleep(self.verify_interval) => {}
            }
            return Ok(if session.state().is_terminated() {
                Renewal::Lost
            } else {
                Renewal::Renewed
            });
        }
        let (stat, watcher) = self
            .client
            .call(
                "exists",
                &node.path,
                session.check_and_watch_stat(&node.path),
            )
            .await?;
        if stat.is_none() {
            tracing::warn!(node = %node.path, "zookeeper: the node was deleted; registering again");
            return Ok(Renewal::Lost);
        }
        tokio::select! {
            event = watcher.changed() => match event.event_type {
                EventType::NodeDeleted => {
                    tracing::warn!(node = %node.path, "zookeeper: the node was deleted; registering again");
                    Ok(Renewal::Lost)
                }
                EventType::Session => {
                    tracing::warn!(node = %node.path, state = %event.session_state, "zookeeper: the session ended; registering again");
                    Ok(Renewal::Lost)
                }
                _ => Ok(Renewal::Renewed),
            },
            // A reconnection (possibly to another server): the next renewal sets a fresh watch
            // rather than trusting the client to carry this one over.
            _ = state.changed() => Ok(Renewal::Renewed),
            _ = tokio::time::sleep(self.verify_interval) => Ok(Renewal::Renewed),
        }
    }

    async fn do_deregister(&self) -> Result<(), Error> {
        let Some(node) = self.set_node(None) else {
            return Ok(());
        };
        let session = self.client.session().await?;
        if session.session_id().0 != node.session {
            return Ok(()); // the node ended with its session
        }
        match self
            .client
            .call("delete", &node.path, session.delete(&node.path, None))
            .await
        {
            Ok(()) => {}
            Err(error) if is_no_node(&error) => {}
            // The session expired under the delete (a server restart, a long pause): the
            // server removes an expired session's ephemeral nodes itself.
            Err(error) if matches!(error.zookeeper_error(), Some(zk::Error::SessionExpired)) => {
                tracing::info!(node = %node.path, "zookeeper: deregistered (the session expired)");
                return Ok(());
            }
            Err(error) => return Err(error),
        }
        self.sweep(&session, None).await?;
        tracing::info!(node = %node.path, "zookeeper: deregistered");
        Ok(())
    }
}

impl Registration for Steps {
    fn register(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { self.do_register().await.map_err(BoxError::from) })
    }

    fn renew(&self) -> BoxFuture<'_, Result<Renewal, BoxError>> {
        Box::pin(async move { self.do_renew().await.map_err(BoxError::from) })
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { self.do_deregister().await.map_err(BoxError::from) })
    }

    fn describe(&self) -> String {
        format!("zookeeper node {}<sequence>", self.prefix)
    }
}
