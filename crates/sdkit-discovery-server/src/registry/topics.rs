//! Change notification per (env, appid), for parked long polls.
//!
//! Each parked request holds its own receiver (waiters are kept per request, not per
//! hostname as in the reference), taken *before* it reads the registry, so a change between
//! the read and the wait is never lost. A write bumps the topic's `watch` channel, which wakes
//! every receiver at once. Topics exist only while someone listens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

type Key = (String, String);

/// The topic table.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    map: Mutex<HashMap<Key, watch::Sender<()>>>,
}

/// A listener on one topic; removes the topic when the last listener goes.
#[derive(Debug)]
pub(crate) struct Subscription {
    topics: Arc<Topics>,
    key: Key,
    rx: Option<watch::Receiver<()>>,
}

impl Topics {
    /// Starts listening on (env, appid).
    pub(crate) fn subscribe(self: &Arc<Self>, env: &str, appid: &str) -> Subscription {
        let key = (env.to_owned(), appid.to_owned());
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = map
            .entry(key.clone())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        Subscription {
            topics: Arc::clone(self),
            key,
            rx: Some(rx),
        }
    }

    /// Wakes every listener of (env, appid).
    pub(crate) fn notify(&self, env: &str, appid: &str) {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = map.get(&(env.to_owned(), appid.to_owned())) {
            tx.send_modify(|_| {});
        }
    }

    /// Topics currently listened to.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Subscription {
    /// Resolves at the next notification after the subscription (or the previous wake-up).
    pub(crate) async fn changed(&mut self) {
        let alive = match self.rx.as_mut() {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        };
        if !alive {
            // The sender lives while we listen; should it vanish, never resolve.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut map = self
            .topics
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.key)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_wakes_and_topics_are_dropped() {
        let topics = Arc::new(Topics::default());
        let mut a = topics.subscribe("e", "x");
        let mut b = topics.subscribe("e", "x");
        topics.notify("e", "x");
        a.changed().await;
        b.changed().await;
        assert_eq!(topics.len(), 1);
        drop(a);
        drop(b);
        assert_eq!(topics.len(), 0);
    }
}
