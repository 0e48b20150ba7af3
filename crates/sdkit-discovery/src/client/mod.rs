//! The wire: one shared [`Client`] per process (or per registry), owning the node list and the
//! single long-poll loop for every appid it watches.
//!
//! The loop follows `docs/backends.md` (and the protocol notes, §6):
//!
//! * construction never touches the network; the seeds are usable at once, and self-discovery
//!   through `infra.discovery` (own-zone `http://` addresses) replaces the node list in the
//!   background, dropping nodes that disappeared and falling back to the seeds when every
//!   discovered node fails;
//! * a newly watched appid is answered at once by `fetchs` (an unknown appid resolves to "not
//!   found" in one round trip), then joins the long poll, which is interrupted and re-issued
//!   with the new appid set;
//! * `-304` re-polls at once on the same node (after one non-blocking `fetchs` checking that
//!   the apps it serves instances of still exist: the reference server parks a poll for an app
//!   deleted just before it and never reports a last cancel — sdkit's embedded registry answers
//!   both at once, the check is for other registries); an answer without progress (`-304`, or
//!   `0` moving no cursor) that comes sooner than `min_poll_interval` is quiet, and consecutive
//!   quiet answers are spaced by the backoff, so an instant `-304` cannot make the client spin;
//!   a transport error or any other code
//!   rotates to the next node, resets every cursor and backs off (capped, jittered);
//! * for `unknown_grace` after a node switch (or the same node after a failure, or a restart
//!   of the node that no request saw fail: its `infra.discovery` cursor changed, see
//!   `epoch.rs`), "unknown" or empty for an app that had instances keeps the last set,
//!   published stale (an error event), and the empty set only if still so after the grace
//!   period;
//! * cursors are `i64` and echoed exactly; an answer with only empty lists still advances the
//!   cursor, so a WAITING-only app cannot cause a busy loop; comma-joined `addrs` are split
//!   (by the wire model).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::seq::SliceRandom;
use sdkit_core::CancellationToken;
use sdkit_discovery_proto::args::FetchArgs;
use sdkit_discovery_proto::{Code, Endpoint, INFRA_DISCOVERY, InstanceInfo, StatusFilter};
use sdkit_hyper::PlainClient;
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::{Error, Instancer, InstancerConfig, Registrar, RegistrarConfig};

mod app;
mod epoch;
mod nodes;
mod poll;
mod transport;

pub use app::{AppState, AppWatch};
pub(crate) use nodes::Nodes;
use poll::run;
pub(crate) use transport::code_error;

/// A client of a discovery registry: the node list and one long-poll loop shared by every
/// [`Instancer`] built from it, plus the HTTP calls of every [`Registrar`].
///
/// Cheap to clone. Dropping the last clone (and every instancer and registrar built from it)
/// stops the loop; [`shutdown`](Self::shutdown) stops it at once.
///
/// ```
/// use std::time::Duration;
/// use sdkit_discovery::{Client, Config};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sdkit_discovery::Error> {
/// // Never touches the network: the node need not be up.
/// let client = Client::new(Config::default()
///     .with_nodes(["127.0.0.1:7171"])
///     .with_env("dev")
///     .with_zone("sh001")
///     .with_poll_hold(Duration::from_secs(30))
///     )?;
/// assert_eq!(client.current_node(), "127.0.0.1:7171");
/// client.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    owner: Arc<Owner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("env", &self.inner().config.env)
            .field("zone", &self.inner().config.zone)
            .field("watcher_id", &self.inner().watcher_id)
            .field("node", &self.current_node())
            .finish_non_exhaustive()
    }
}

/// Stops the loop when the last [`Client`] clone goes.
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

type Http = PlainClient;

pub(crate) struct Inner {
    pub(crate) config: Config,
    watcher_id: String,
    http: Http,
    nodes: Mutex<Nodes>,
    state: Mutex<State>,
    wake: Notify,
    pub(crate) shutdown: CancellationToken,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("watcher_id", &self.watcher_id)
            .finish_non_exhaustive()
    }
}

struct AppEntry {
    watchers: usize,
    /// `None`: no answer from the node in use yet (answer through `fetchs`).
    cursor: Option<i64>,
    tx: watch::Sender<AppState>,
    /// The last answer published for this app had instances (the grace period applies).
    had_instances: bool,
}

#[derive(Default)]
struct State {
    apps: BTreeMap<String, AppEntry>,
    /// The node that issued the cursors.
    cursor_node: Option<String>,
    /// When the loop last moved to a node (a switch, or the same node after a failure); the
    /// first node of the client is not a switch.
    switched_at: Option<tokio::time::Instant>,
    /// A node has issued cursors before.
    had_node: bool,
    /// The epoch of `cursor_node` (its `infra.discovery` cursor, `None` inside when it does
    /// not know that app); `None` until its first `fetchs` answer. See `epoch.rs`.
    epoch: Option<Option<i64>>,
}

/// The next request of the loop.
enum Plan {
    Idle,
    Fetch(Vec<String>),
    Poll(Vec<String>, Vec<i64>),
}

impl Client {
    /// Builds a client from `config` and starts its (idle until needed) loop. Never touches
    /// the network.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unusable configuration, [`Error::NoRuntime`] outside Tokio.
    pub fn new(config: Config) -> Result<Client, Error> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut seeds = config.seed_nodes();
        seeds.shuffle(&mut rand::rng());
        let watcher_id = config.watcher_id.clone().unwrap_or_else(|| {
            format!(
                "{}-{}-{:08x}",
                config.hostname,
                std::process::id(),
                rand::random::<u32>()
            )
        });
        let http = sdkit_hyper::plain(config.connect_timeout);
        let inner = Arc::new(Inner {
            nodes: Mutex::new(Nodes::new(seeds)),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            watcher_id,
            http,
            config,
        });
        if inner.config.self_discovery {
            inner.watch_entry(INFRA_DISCOVERY);
        }
        runtime.spawn(run(Arc::clone(&inner)));
        Ok(Client {
            owner: Arc::new(Owner { inner }),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.owner.inner
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner().config
    }

    /// The watcher identity sent as `hostname` in long polls.
    pub fn watcher_id(&self) -> &str {
        &self.inner().watcher_id
    }

    /// The node requests go to now.
    pub fn current_node(&self) -> String {
        self.inner().nodes().current()
    }

    /// The nodes in rotation now (discovered ones, or the seeds).
    pub fn nodes(&self) -> Vec<String> {
        self.inner().nodes().candidates()
    }

    /// Watches `appid`: answered at once through `fetchs`, then kept current by the long poll.
    pub fn watch(&self, appid: impl Into<String>) -> AppWatch {
        let appid = appid.into();
        let rx = self.inner().watch_entry(&appid);
        AppWatch {
            appid,
            rx,
            inner: Arc::clone(self.inner()),
        }
    }

    /// The cursor the client holds for `appid` on the current node, if any.
    pub fn cursor(&self, appid: &str) -> Option<i64> {
        self.inner().lock_state().apps.get(appid)?.cursor
    }

    /// One `fetch` of the UP instances of `appid` from the current node; `Ok(None)` when the
    /// registry does not know it.
    ///
    /// # Errors
    ///
    /// Any wire failure (the node is then rotated).
    pub async fn fetch(&self, appid: &str) -> Result<Option<InstanceInfo>, Error> {
        let args = FetchArgs {
            env: self.config().env.clone(),
            appid: appid.to_owned(),
            status: StatusFilter::UP.0,
            zone: String::new(),
        };
        let (_, reply) = self
            .inner()
            .call_current::<InstanceInfo>(Endpoint::Fetch, &args.to_form())
            .await?;
        match reply.code {
            Code::OK => Ok(reply.data.into_value()),
            Code::NOTHING_FOUND => Ok(None),
            code => Err(code_error("", Endpoint::Fetch, code, &reply.message)),
        }
    }

    /// An [`Instancer`] for one appid, sharing this client's loop.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty appid or a malformed scheme.
    pub fn instancer(&self, config: InstancerConfig) -> Result<Instancer, Error> {
        Instancer::new(self, config)
    }

    /// A [`Registrar`] for one instance, using this client's nodes.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty appid or no address.
    pub fn registrar(&self, config: RegistrarConfig) -> Result<Registrar, Error> {
        Registrar::new(self, config)
    }

    /// Stops the loop at once (an in-flight poll is abandoned); every watch ends. Idempotent.
    pub fn shutdown(&self) {
        self.inner().shutdown.cancel();
    }

    /// `true` once shut down.
    pub fn is_shutdown(&self) -> bool {
        self.inner().shutdown.is_cancelled()
    }
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A grace period after a node switch or restart is running.
    fn in_grace(&self, state: &State) -> bool {
        state
            .switched_at
            .is_some_and(|at| at.elapsed() < self.config.unknown_grace)
    }

    pub(crate) fn nodes(&self) -> MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn watch_entry(&self, appid: &str) -> watch::Receiver<AppState> {
        let mut state = self.lock_state();
        if let Some(entry) = state.apps.get_mut(appid) {
            entry.watchers += 1;
            return entry.tx.subscribe();
        }
        let (tx, rx) = watch::channel(AppState::Pending);
        state.apps.insert(
            appid.to_owned(),
            AppEntry {
                watchers: 1,
                cursor: None,
                tx,
                had_instances: false,
            },
        );
        drop(state);
        self.wake.notify_one();
        rx
    }

    fn unwatch(&self, appid: &str) {
        let mut state = self.lock_state();
        let Some(entry) = state.apps.get_mut(appid) else {
            return;
        };
        entry.watchers = entry.watchers.saturating_sub(1);
        if entry.watchers == 0 {
            state.apps.remove(appid);
            drop(state);
            self.wake.notify_one();
        }
    }
}
