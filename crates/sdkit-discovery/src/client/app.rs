//! What a [`Client`](super::Client) knows about one watched appid ([`AppState`]) and a
//! subscription to it ([`AppWatch`]).

use std::sync::Arc;

use sdkit_core::SourceError;
use sdkit_discovery_proto::Instance as WireInstance;
use tokio::sync::watch;

use super::Inner;

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

/// A subscription to one appid of a [`Client`](crate::Client); dropping it stops watching the appid (when no
/// other watcher wants it).
#[derive(Debug)]
pub struct AppWatch {
    pub(super) appid: String,
    pub(super) rx: watch::Receiver<AppState>,
    pub(super) inner: Arc<Inner>,
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
