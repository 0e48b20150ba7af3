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
//!   both at once, the check is for other registries); a transport error or any other code
//!   rotates to the next node, resets every cursor and backs off (capped, jittered);
//! * cursors are `i64` and echoed exactly; an answer with only empty lists still advances the
//!   cursor, so a WAITING-only app cannot cause a busy loop; comma-joined `addrs` are split
//!   (by the wire model).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rand::seq::SliceRandom;
use sdkit_core::{CancellationToken, SourceError};
use sdkit_discovery_proto::args::{FetchArgs, FetchsArgs, PollsArgs};
use sdkit_discovery_proto::{
    Code, Endpoint, Form, INFRA_DISCOVERY, Instance as WireInstance, InstanceInfo, Method, Reply,
    Status, StatusFilter, decode_reply,
};
use sdkit_hyper::{Body, ExchangeError, PlainClient};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{Config, normalize_node};
use crate::{Error, Instancer, InstancerConfig, Registrar, RegistrarConfig};

/// The header through which a bm-compatible server shortens its hold to the caller's budget.
const BMSPY_TIMEOUT: &str = "x1-bmspy-timeout";
/// What a bm server subtracts from `x1-bmspy-timeout` before using it as the deadline.
const BMSPY_MARGIN: Duration = Duration::from_millis(20);

/// What the client knows about one watched appid.
#[derive(Clone, Debug)]
pub enum AppState {
    /// No answer yet.
    Pending,
    /// The UP instances of every zone (possibly none: every instance is WAITING).
    Instances(Arc<Vec<WireInstance>>),
    /// The registry does not know the appid in this env.
    NotFound,
    /// The registry is failing; the last good state is stale.
    Failed(SourceError),
}

/// A subscription to one appid of a [`Client`]; dropping it stops watching the appid (when no
/// other watcher wants it).
#[derive(Debug)]
pub struct AppWatch {
    appid: String,
    rx: watch::Receiver<AppState>,
    inner: Arc<Inner>,
}

impl AppWatch {
    /// The appid.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// A receiver of the states (ends when the client's loop state is dropped).
    pub(crate) fn receiver(&self) -> watch::Receiver<AppState> {
        self.rx.clone()
    }

    /// The current state, marking it seen.
    pub fn current(&mut self) -> AppState {
        self.rx.borrow_and_update().clone()
    }

    /// Waits for a state not yet seen; `None` once the client is shut down.
    pub async fn changed(&mut self) -> Option<AppState> {
        tokio::select! {
            r = self.rx.changed() => r.ok().map(|()| self.rx.borrow_and_update().clone()),
            () = self.inner.shutdown.cancelled() => None,
        }
    }
}

impl Drop for AppWatch {
    fn drop(&mut self) {
        self.inner.unwatch(&self.appid);
    }
}

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
}

#[derive(Default)]
struct State {
    apps: BTreeMap<String, AppEntry>,
    /// The node that issued the cursors.
    cursor_node: Option<String>,
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

    /// What to send next to `node`; resets the cursors when `node` did not issue them.
    fn plan(&self, node: &str) -> Plan {
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
    async fn step(&self, node: &str) -> Result<(), Error> {
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
    async fn verify(&self, node: &str) -> Result<(), Error> {
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
    fn apply(&self, node: &str, appid: &str, info: Option<InstanceInfo>) {
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
    fn discovered(&self, instances: &[WireInstance]) {
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
    fn failed(&self, error: &SourceError) {
        let mut state = self.lock_state();
        state.cursor_node = None;
        for entry in state.apps.values_mut() {
            entry.cursor = None;
            entry.tx.send_replace(AppState::Failed(error.clone()));
        }
    }

    /// One request to the current node; a transport failure or an unexpected code rotates.
    pub(crate) async fn call_current<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        form: &Form,
    ) -> Result<(String, Reply<T>), Error> {
        let node = self.nodes().current();
        match self
            .call(&node, endpoint, form, self.config.request_timeout)
            .await
        {
            Ok(reply) => Ok((node, reply)),
            Err(e) => {
                self.nodes().failed(&node);
                Err(e)
            }
        }
    }

    /// One request to `node`. `budget` is what the server may spend (sent as
    /// `x1-bmspy-timeout`); the HTTP timeout adds `poll_slack` for long polls.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        node: &str,
        endpoint: Endpoint,
        form: &Form,
        budget: Duration,
    ) -> Result<Reply<T>, Error> {
        let path = endpoint.path();
        let timeout = if endpoint == Endpoint::Polls {
            budget + self.config.poll_slack
        } else {
            budget
        };
        let encoded = form.encode();
        let mut builder = http::Request::builder()
            .header(BMSPY_TIMEOUT, budget.as_millis().to_string())
            .header(http::header::USER_AGENT, "sdkit-discovery");
        if let Some(token) = &self.config.token {
            // The only place the token is exposed: the wire. Marked sensitive for hyper.
            let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.expose()))
                .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        let request = match endpoint.method() {
            Method::Get => builder
                .method(http::Method::GET)
                .uri(format!("http://{node}{path}?{encoded}"))
                .body(Body::new(Bytes::new())),
            Method::Post => builder
                .method(http::Method::POST)
                .uri(format!("http://{node}{path}"))
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(Body::new(Bytes::from(encoded))),
        }
        .map_err(|e| transport(node, path, e))?;
        let max_body = self.config.max_body;
        let response = sdkit_hyper::exchange(&self.http, request, timeout, max_body)
            .await
            .map_err(|e| match e {
                ExchangeError::Timeout(timeout) => Error::Timeout {
                    node: node.to_owned(),
                    endpoint: path,
                    timeout,
                },
                ExchangeError::TooLarge { max } => {
                    malformed(node, path, format!("reply body exceeds {max} bytes"))
                }
                ExchangeError::Transport(source) => transport(node, path, source),
                other => transport(node, path, other),
            })?;
        if response.status != http::StatusCode::OK {
            return Err(Error::Http {
                node: node.to_owned(),
                endpoint: path,
                status: response.status.as_u16(),
            });
        }
        decode_reply::<T>(&response.body, max_body).map_err(|e| malformed(node, path, e))
    }
}

/// The loop: one request at a time, every await cancellable by shutdown.
async fn run(inner: Arc<Inner>) {
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
fn up_instances(info: InstanceInfo) -> Vec<WireInstance> {
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

fn transport(
    node: &str,
    endpoint: &'static str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Transport {
        node: node.to_owned(),
        endpoint,
        source: e.into(),
    }
}

fn malformed(
    node: &str,
    endpoint: &'static str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Malformed {
        node: node.to_owned(),
        endpoint,
        source: e.into(),
    }
}

pub(crate) fn code_error(node: &str, endpoint: Endpoint, code: Code, message: &str) -> Error {
    Error::Code {
        node: node.to_owned(),
        endpoint: endpoint.path(),
        code,
        message: message.chars().take(200).collect(),
    }
}

/// The node list: seeds, discovered nodes, and which one is in use.
#[derive(Debug)]
pub(crate) struct Nodes {
    seeds: Vec<String>,
    discovered: Vec<String>,
    index: usize,
    /// Consecutive failures; once every discovered node failed, the seeds join the rotation.
    failures: usize,
    last_rotation: Instant,
}

impl Nodes {
    fn new(seeds: Vec<String>) -> Nodes {
        Nodes {
            seeds,
            discovered: Vec::new(),
            index: 0,
            failures: 0,
            last_rotation: Instant::now(),
        }
    }

    /// The nodes in rotation.
    pub(crate) fn candidates(&self) -> Vec<String> {
        if self.discovered.is_empty() {
            return self.seeds.clone();
        }
        let mut list = self.discovered.clone();
        if self.failures >= self.discovered.len() {
            for seed in &self.seeds {
                if !list.contains(seed) {
                    list.push(seed.clone());
                }
            }
        }
        list
    }

    /// The node in use.
    pub(crate) fn current(&self) -> String {
        let list = self.candidates();
        // Never empty: validation guarantees a seed.
        list.get(self.index % list.len().max(1))
            .cloned()
            .unwrap_or_default()
    }

    /// Points the index at `node` when it is in rotation.
    fn keep(&mut self, node: &str) {
        if let Some(pos) = self.candidates().iter().position(|n| n == node) {
            self.index = pos;
        }
    }

    /// The node for the next loop step, rotating when the interval elapsed.
    fn pick(&mut self, interval: Duration) -> String {
        if !interval.is_zero() && self.last_rotation.elapsed() >= interval {
            self.last_rotation = Instant::now();
            if self.candidates().len() > 1 {
                self.index = self.index.wrapping_add(1);
                info!(node = %self.current(), "rotating to the next discovery node");
            }
        }
        self.current()
    }

    /// `node` failed: move past it (unless somebody already did).
    pub(crate) fn failed(&mut self, node: &str) {
        if self.current() != node {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let list = self.candidates();
        let pos = list.iter().position(|n| n == node).unwrap_or(self.index);
        self.index = pos.wrapping_add(1) % list.len().max(1);
    }

    /// `node` answered.
    pub(crate) fn succeeded(&mut self, node: &str) {
        if self.failures > 0
            && (self.discovered.is_empty() || self.discovered.iter().any(|n| n == node))
        {
            self.failures = 0;
            self.keep(node);
        }
    }

    /// Replaces the discovered list; returns whether it changed. The node in use stays in use
    /// when it is still listed.
    fn set_discovered(&mut self, nodes: Vec<String>) -> bool {
        if nodes == self.discovered {
            return false;
        }
        let current = self.current();
        self.discovered = nodes;
        if self.discovered.contains(&current) {
            self.failures = 0;
        }
        self.index = 0;
        self.keep(&current);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(seeds: &[&str]) -> Nodes {
        Nodes::new(seeds.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn failure_rotates_once_per_failure() {
        let mut n = nodes(&["a:1", "b:1"]);
        assert_eq!(n.current(), "a:1");
        n.failed("a:1");
        assert_eq!(n.current(), "b:1");
        // A second report of the same failure (registrar and loop) does not skip a node.
        n.failed("a:1");
        assert_eq!(n.current(), "b:1");
    }

    #[test]
    fn discovered_nodes_replace_seeds_and_fall_back() {
        let mut n = nodes(&["seed:1"]);
        assert!(n.set_discovered(vec!["x:1".into(), "y:1".into()]));
        assert_eq!(n.candidates(), ["x:1", "y:1"]);
        // A node that disappeared is dropped.
        assert!(n.set_discovered(vec!["y:1".into()]));
        assert_eq!(n.current(), "y:1");
        // Every discovered node failed: the seeds join.
        n.failed("y:1");
        assert_eq!(n.current(), "seed:1");
        n.succeeded("seed:1");
        assert_eq!(n.current(), "seed:1", "a working seed stays in use");
        assert!(n.set_discovered(vec!["seed:1".into()]));
        n.succeeded("seed:1");
        assert_eq!(n.candidates(), ["seed:1"]);
    }

    #[test]
    fn periodic_rotation() {
        let mut n = nodes(&["a:1", "b:1"]);
        assert_eq!(n.pick(Duration::from_secs(3600)), "a:1");
        assert_eq!(n.pick(Duration::ZERO), "a:1");
        n.last_rotation = Instant::now() - Duration::from_secs(10);
        assert_eq!(n.pick(Duration::from_secs(5)), "b:1");
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
