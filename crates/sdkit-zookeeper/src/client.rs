//! The wire: one ZooKeeper session at a time, shared by every instancer and registrar made from
//! the same [`Client`], re-established after it ends.
//!
//! * Construction never touches the network: the first request establishes the session.
//! * The connect string lists the whole ensemble; the underlying client (`zookeeper-client`)
//!   tries the servers in turn and, once connected, fails over to another server when its
//!   connection breaks, keeping the session (and its watches and ephemeral nodes) alive as long
//!   as it reconnects within the session timeout.
//! * A session that **ends** — expired by the ensemble, closed, or refused authentication — is
//!   replaced by a new one on the next request. The instancer re-reads and re-watches, the
//!   registrar re-creates its ephemeral node; neither loses its last good state meanwhile.
//! * Digest credentials (`with_digest`) are sent as `digest` auth with every new session; they
//!   never appear in `Debug`, logs or errors.
//! * Every request is bounded by `request_timeout`, session establishment by `connect_timeout`.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use zk::{Acl, Acls, Permission};
use zookeeper_client as zk;

use crate::config::Config;
use crate::error::Error;

/// "Anyone who authenticated as the creator: everything; anyone: read" — the ACL of the nodes
/// a client with digest credentials creates.
static CREATOR_ALL_ANYONE_READ: [Acl; 2] = [
    Acl::new_const(Permission::ALL, "auth", ""),
    Acl::new_const(Permission::READ, "world", "anyone"),
];

/// A ZooKeeper client: cheap to clone, one shared session. See the [module docs](self).
///
/// ```
/// use sdkit_zookeeper::{Client, Config};
///
/// // No network I/O here: the session is established by the first request.
/// let client = Client::new(Config::new(["127.0.0.1:2181", "127.0.0.1:2182"])).unwrap();
/// assert_eq!(client.session_id(), None);
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// Serialises session establishment.
    connecting: tokio::sync::Mutex<()>,
    /// The current session, if any.
    current: Mutex<Option<zk::Client>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("session", &self.session_id().map(|id| format!("{id:#x}")))
            .finish()
    }
}

impl Client {
    /// A client for `config` (validated; nothing is sent yet).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the configuration is unusable.
    pub fn new(config: Config) -> Result<Client, Error> {
        config.validate()?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                connecting: tokio::sync::Mutex::new(()),
                current: Mutex::new(None),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The id of the current session while it is alive (connected or reconnecting).
    pub fn session_id(&self) -> Option<i64> {
        self.live().map(|s| s.session_id().0)
    }

    fn live(&self) -> Option<zk::Client> {
        let current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .filter(|s| !s.state().is_terminated())
            .cloned()
    }

    /// The live session, establishing a new one when there is none or the last one ended.
    pub(crate) async fn session(&self) -> Result<zk::Client, Error> {
        if let Some(session) = self.live() {
            return Ok(session);
        }
        let _guard = self.inner.connecting.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(session) = self.live() {
            return Ok(session);
        }
        let ended = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(ended) = ended {
            tracing::warn!(session = %ended.session_id(), state = %ended.state(), "zookeeper: session ended; establishing a new one");
        }
        let session = self.connect().await?;
        tracing::info!(session = %session.session_id(), timeout = ?session.session_timeout(), "zookeeper: session established");
        *self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(session.clone());
        Ok(session)
    }

    async fn connect(&self) -> Result<zk::Client, Error> {
        let config = &self.inner.config;
        let servers = config.connect_string();
        let mut connector = zk::Client::connector()
            .with_session_timeout(config.session_timeout())
            .with_fail_eagerly();
        let user = config.digest_user().map(str::to_owned);
        if let Some((_, credentials)) = config.digest_credentials() {
            connector = connector.with_auth("digest", &credentials);
        }
        let timeout = config.connect_timeout();
        let result = tokio::time::timeout(timeout, connector.connect(&servers)).await;
        match result {
            Err(_) => Err(Error::Timeout {
                op: "connect",
                path: servers,
                timeout,
            }),
            Ok(Err(zk::Error::AuthFailed)) => Err(Error::Auth {
                user: user.unwrap_or_default(),
            }),
            Ok(Err(source)) => Err(Error::Connect { servers, source }),
            Ok(Ok(session)) => Ok(session),
        }
    }

    /// Runs one request `fut` (operation `op` on `path`) within the request timeout.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        path: &str,
        fut: impl Future<Output = Result<T, zk::Error>>,
    ) -> Result<T, Error> {
        let timeout = self.inner.config.request_timeout();
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(zk::Error::AuthFailed | zk::Error::NoAuth))
                if self.config().digest_user().is_some() =>
            {
                Err(Error::Auth {
                    user: self.config().digest_user().unwrap_or_default().to_owned(),
                })
            }
            Ok(Err(source)) => Err(Error::request(op, path, source)),
            Err(_) => Err(Error::Timeout {
                op,
                path: path.to_owned(),
                timeout,
            }),
        }
    }

    /// The ACL of the nodes this client creates: open without credentials, "creator: all,
    /// anyone: read" with digest credentials.
    pub(crate) fn acls(&self) -> Acls<'static> {
        if self.inner.config.digest_user().is_some() {
            Acls::new(&CREATOR_ALL_ANYONE_READ)
        } else {
            Acls::anyone_all()
        }
    }
}
