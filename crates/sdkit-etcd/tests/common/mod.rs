//! Helpers shared by the etcd integration tests: fast timings, a writer client that retries
//! while members are down, and waiting for a snapshot that satisfies a condition.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, DeleteOptions, GetOptions};
use sdkit_core::{Backoff, Instance};
use sdkit_etcd::{Config, Error, Instancer, InstancerConfig, Registrar, RegistrarConfig};
use tokio::time::Instant;

#[allow(unused_imports)]
pub use sdkit_testkit::logs::Captured;
pub use sdkit_testkit::wait::{EVENTUALLY, ids, wait_for};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sdkit_etcd=debug,sdkit_core=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A client configuration and the prefix the test works under.
#[derive(Clone, Debug)]
pub struct Setup {
    pub client: Config,
    pub prefix: String,
}

/// Fast timings for tests: short timeouts, short TTL, quick retries.
pub fn config(endpoints: Vec<String>, prefix: &str) -> Setup {
    Setup {
        client: Config::new(endpoints)
            .with_connect_timeout(Duration::from_secs(1))
            .with_request_timeout(Duration::from_secs(2))
            .with_keepalive(Duration::from_secs(1), Duration::from_secs(1))
            .with_watch_progress(Duration::from_secs(1), Duration::from_secs(2)),
        prefix: prefix.to_owned(),
    }
}

/// The test backoff: quick retries.
pub fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(500))
}

impl Setup {
    pub fn with_user(mut self, user: &str, password: &str) -> Self {
        self.client = self.client.with_user(user, password);
        self
    }

    pub fn with_tls(mut self, tls: sdkit_etcd::TlsConfig) -> Self {
        self.client = self.client.with_tls(tls);
        self
    }

    pub fn with_list_page_size(mut self, size: i64) -> Self {
        self.client = self.client.with_list_page_size(size);
        self
    }

    pub fn with_watch_progress(mut self, interval: Duration, timeout: Duration) -> Self {
        self.client = self.client.with_watch_progress(interval, timeout);
        self
    }

    pub fn with_keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.client = self.client.with_keepalive(interval, timeout);
        self
    }

    pub fn watch(&self) -> InstancerConfig {
        InstancerConfig::new(&self.prefix).with_backoff(backoff())
    }

    pub fn registration(&self, instance: Instance) -> RegistrarConfig {
        RegistrarConfig::new(&self.prefix, instance)
            .with_backoff(backoff())
            .with_ttl(Duration::from_secs(2))
    }

    pub fn ttl_secs(&self) -> i64 {
        self.registration(Instance::new("x", "127.0.0.1:1"))
            .ttl_secs()
    }

    pub fn instancer(&self) -> Result<Instancer, Error> {
        Instancer::from_config(self.client.clone(), self.watch())
    }

    pub fn registrar(&self, instance: Instance) -> Result<Registrar, Error> {
        Registrar::from_config(self.client.clone(), self.registration(instance))
    }
}

/// A plain etcd-client used by the tests to change the registry behind the backend's back.
#[derive(Clone)]
pub struct Writer {
    client: Client,
}

impl Writer {
    pub async fn connect(endpoints: &[String]) -> Writer {
        Self::connect_with(endpoints, None).await
    }

    pub async fn connect_with(endpoints: &[String], user: Option<(&str, &str)>) -> Writer {
        let mut options = ConnectOptions::new()
            .with_timeout(Duration::from_secs(1))
            .with_connect_timeout(Duration::from_secs(1));
        if let Some((u, p)) = user {
            options = options.with_user(u, p);
        }
        let client = Client::connect(endpoints, Some(options))
            .await
            .expect("writer connects");
        Writer { client }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Retries `op` until it succeeds (members may be down), for at most [`EVENTUALLY`].
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let end = Instant::now() + EVENTUALLY;
        loop {
            match op(self.client.clone()).await {
                Ok(v) => return v,
                Err(e) if Instant::now() < end => {
                    tracing::debug!(what, error = %e, "writer retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{what} kept failing: {e}"),
            }
        }
    }

    pub async fn put(&self, key: &str, value: &str) -> i64 {
        let (k, v) = (key.to_owned(), value.to_owned());
        let r = self
            .retry("put", |mut c| {
                let (k, v) = (k.clone(), v.clone());
                async move { c.put(k, v, None).await }
            })
            .await;
        r.header().map_or(0, |h| h.revision())
    }

    pub async fn delete(&self, key: &str) {
        let k = key.to_owned();
        self.retry("delete", |mut c| {
            let k = k.clone();
            async move { c.delete(k, None::<DeleteOptions>).await }
        })
        .await;
    }

    /// The value and lease of `key`, if it exists.
    pub async fn get(&self, key: &str) -> Option<(String, i64)> {
        let k = key.to_owned();
        let r = self
            .retry("get", |mut c| {
                let k = k.clone();
                async move { c.get(k, None::<GetOptions>).await }
            })
            .await;
        r.kvs()
            .first()
            .map(|kv| (String::from_utf8_lossy(kv.value()).into_owned(), kv.lease()))
    }

    /// Puts `n` keys `<prefix>/k0000…` with plain values, 32 in flight.
    pub async fn put_many(&self, prefix: &str, range: std::ops::Range<usize>) {
        let this = Arc::new(self.clone());
        let keys: Vec<usize> = range.collect();
        for chunk in keys.chunks(32) {
            let mut set = tokio::task::JoinSet::new();
            for &i in chunk {
                let w = Arc::clone(&this);
                let key = format!("{prefix}/k{i:05}");
                let value = format!("127.0.0.1:{}", 10000 + i);
                set.spawn(async move { w.put(&key, &value).await });
            }
            while let Some(r) = set.join_next().await {
                r.expect("put task");
            }
        }
    }

    pub async fn current_revision(&self) -> i64 {
        let r = self
            .retry("get", |mut c| async move { c.get("/", None).await })
            .await;
        r.header().map_or(0, |h| h.revision())
    }
}
