//! The wire: a lazily connected, cheaply cloneable etcd client shared by instancers and
//! registrars.
//!
//! [`Client::new`] only checks the configuration; the connection (and, with a user, the
//! authentication) happens on first use and is retried by the callers' loops, so construction
//! never blocks on the network. Every unary call is bounded by the request timeout and retried
//! at once on another endpoint when the one it hit is unavailable (a member down answers
//! `Unavailable` until it returns). Each watch and each lease keep-alive is its own gRPC stream:
//! one user's stream failing or ending never touches another's (go-kit closes every watch of a
//! shared client when one registrar fails).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client as RawClient, ConnectOptions, DeleteOptions, GetOptions, Identity,
    KeyValue, LeaseKeepAliveStream, LeaseKeeper, PutOptions, TlsOptions, WatchOptions, WatchStream,
};
use sdkit_core::Backoff;
use tokio::sync::Mutex;

use crate::config::Config;
use crate::error::{Error, is_unavailable};

/// One page of a prefix listing.
#[derive(Debug)]
pub(crate) struct Page {
    /// The store revision the page was read at.
    pub revision: i64,
    /// The key-values of the page.
    pub kvs: Vec<KeyValue>,
    /// `true` when more keys follow.
    pub more: bool,
}

/// A lazily connected etcd client; clones share one connection pool. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    client: Mutex<Option<RawClient>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Config's Debug hides the password; etcd-client's ConnectOptions would print it, so it
        // is never formatted.
        f.debug_struct("Client")
            .field("endpoints", &self.inner.config.endpoints)
            .field("user", &self.inner.config.user)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config`; no network I/O happens here.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the configuration is unusable.
    pub fn new(config: Config) -> Result<Self, Error> {
        config.validate()?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                client: Mutex::new(None),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Connects (and authenticates) if not yet connected, and returns the underlying
    /// `etcd_client::Client` (cheap to clone) for calls this crate does not wrap.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] when etcd refuses the credentials, [`Error::Timeout`] or
    /// [`Error::Request`] when no endpoint answers, [`Error::TlsFile`] for unreadable
    /// TLS files.
    pub async fn connect(&self) -> Result<RawClient, Error> {
        let mut slot = self.inner.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let config = &self.inner.config;
        let options = connect_options(config)?;
        // With a user, connecting authenticates: a round trip, bounded like one.
        let bound = config.connect_timeout + config.request_timeout;
        let client =
            match tokio::time::timeout(bound, RawClient::connect(&config.endpoints, Some(options)))
                .await
            {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    return Err(Error::from_client("connect", e, config.user.as_deref()));
                }
                Err(_) => {
                    return Err(Error::Timeout {
                        op: "connect",
                        timeout: bound,
                    });
                }
            };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs the unary call `call` bounded by the request timeout, retrying at once (a few
    /// times, within one request timeout overall) when the endpoint it reached is unavailable,
    /// so that the balancer can pick another member.
    pub(crate) async fn unary<T, F, Fut>(&self, op: &'static str, mut call: F) -> Result<T, Error>
    where
        F: FnMut(RawClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let config = &self.inner.config;
        let timeout = config.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let attempts = 2 * config.endpoints.len() + 1;
        let mut backoff =
            Backoff::new(Duration::from_millis(5), Duration::from_millis(100)).start();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = match tokio::time::timeout_at(deadline, self.connect()).await {
                Ok(result) => result?,
                Err(_) => return Err(Error::Timeout { op, timeout }),
            };
            let error = match tokio::time::timeout_at(deadline, call(client)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => e,
                Err(_) => return Err(Error::Timeout { op, timeout }),
            };
            if attempt >= attempts || !is_unavailable(&error) {
                return Err(Error::from_client(op, error, config.user.as_deref()));
            }
            tracing::debug!(op, attempt, error = %error, "etcd endpoint unavailable; retrying");
            let pause = backoff.next_delay();
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(Error::from_client(op, error, config.user.as_deref()));
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// One page of the keys under `prefix_dir`, starting at `from` (inclusive), read at
    /// `revision` (0 = latest).
    pub(crate) async fn list_page(
        &self,
        prefix_dir: &str,
        from: &[u8],
        revision: i64,
    ) -> Result<Page, Error> {
        let config = &self.inner.config;
        let end = prefix_end(prefix_dir.as_bytes());
        let limit = config.list_page_size;
        let max = config.max_message_size;
        let response = self
            .unary("list", |client| {
                let options = GetOptions::new()
                    .with_range(end.clone())
                    .with_limit(limit)
                    .with_revision(revision);
                let mut kv = client.kv_client().max_decoding_message_size(max);
                let key = from.to_vec();
                async move { kv.get(key, Some(options)).await }
            })
            .await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let more = response.more();
        let mut response = response;
        let kvs = response.take_kvs();
        Ok(Page {
            revision,
            kvs,
            more,
        })
    }

    /// Opens a watch on `prefix_dir` from `start_revision`, with previous values and progress
    /// notifications.
    pub(crate) async fn watch(
        &self,
        prefix_dir: &str,
        start_revision: i64,
    ) -> Result<WatchStream, Error> {
        let max = self.inner.config.max_message_size;
        let end = prefix_end(prefix_dir.as_bytes());
        let key = prefix_dir.as_bytes().to_vec();
        self.unary("watch", |client| {
            let options = WatchOptions::new()
                .with_range(end.clone())
                .with_start_revision(start_revision)
                .with_prev_key()
                .with_progress_notify();
            let mut watch = client.watch_client().max_decoding_message_size(max);
            let key = key.clone();
            async move { watch.watch(key, Some(options)).await }
        })
        .await
    }

    /// Grants a lease of `ttl_secs`; returns its id and the TTL etcd granted.
    pub(crate) async fn grant(&self, ttl_secs: i64) -> Result<(i64, i64), Error> {
        let response = self
            .unary("lease grant", |mut client| async move {
                client.lease_grant(ttl_secs, None).await
            })
            .await?;
        Ok((response.id(), response.ttl()))
    }

    /// Puts `key` = `value` attached to `lease`.
    pub(crate) async fn put_with_lease(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> Result<(), Error> {
        self.unary("put", |mut client| async move {
            client
                .put(key, value, Some(PutOptions::new().with_lease(lease)))
                .await
        })
        .await
        .map(drop)
    }

    /// The lease `key` is attached to, or `None` when the key does not exist.
    pub(crate) async fn key_lease(&self, key: &str) -> Result<Option<i64>, Error> {
        let response = self
            .unary(
                "get",
                |mut client| async move { client.get(key, None).await },
            )
            .await?;
        Ok(response.kvs().first().map(KeyValue::lease))
    }

    /// Deletes `key`; deleting a missing key is not an error.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), Error> {
        self.unary("delete", |mut client| async move {
            client.delete(key, None::<DeleteOptions>).await
        })
        .await
        .map(drop)
    }

    /// Revokes `lease`; a lease that is already gone is not an error.
    pub(crate) async fn revoke(&self, lease: i64) -> Result<(), Error> {
        match self
            .unary("lease revoke", |mut client| async move {
                client.lease_revoke(lease).await
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Request {
                source: etcd_client::Error::GRpcStatus(status),
                ..
            }) if status.message().contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Opens a keep-alive stream for `lease`; opening sends the first keep-alive. `None` when
    /// etcd does not know the lease (it expired or was revoked).
    pub(crate) async fn keep_alive(
        &self,
        lease: i64,
    ) -> Result<Option<(LeaseKeeper, LeaseKeepAliveStream)>, Error> {
        match self
            .unary("lease keep-alive", |mut client| async move {
                client.lease_keep_alive(lease).await
            })
            .await
        {
            Ok(pair) => Ok(Some(pair)),
            Err(Error::Request {
                source: etcd_client::Error::LeaseKeepAliveError(message),
                ..
            }) if message.contains("not found") => Ok(None),
            Err(Error::Request {
                source: etcd_client::Error::GRpcStatus(status),
                ..
            }) if status.message().contains("lease not found") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The end of the key range of everything under `prefix` (etcd's "prefix + 1").
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the key space.
    vec![0]
}

/// etcd-client options from `config`.
fn connect_options(config: &Config) -> Result<ConnectOptions, Error> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.connect_timeout)
        .with_timeout(config.request_timeout)
        .with_keep_alive(config.keepalive_interval, config.keepalive_timeout)
        .with_keep_alive_while_idle(true)
        // A member cut off from the leader refuses requests and cancels its watches instead of
        // serving stale data forever; the loops then move to another member.
        .with_require_leader(true)
        .with_tcp_keepalive(config.keepalive_interval);
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options
            .with_user(user.clone(), password.expose())
            .with_auto_token_refresh(true);
    }
    if let Some(tls) = &config.tls {
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path).map_err(|source| Error::TlsFile {
                path: path.display().to_string(),
                source,
            })
        };
        let mut tls_options = TlsOptions::new();
        if let Some(ca) = &tls.ca_file {
            tls_options = tls_options.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            tls_options = tls_options.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(domain) = &tls.domain {
            tls_options = tls_options.domain_name(domain.clone());
        }
        options = options.with_tls(tls_options);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn debug_hides_the_password() {
        let client = Client::new(Config::default().with_user("u", "pa55word")).unwrap();
        assert!(!format!("{client:?}").contains("pa55word"));
    }

    #[tokio::test]
    async fn construction_does_not_touch_the_network() {
        // Port 1 on loopback refuses; construction must still succeed at once.
        let client = Client::new(
            Config::new(["127.0.0.1:1"]).with_request_timeout(Duration::from_millis(300)),
        )
        .unwrap();
        let err = client.delete("/x").await.unwrap_err();
        assert!(err.to_string().starts_with("etcd: "), "{err}");
    }
}
