//! The Eureka instancer: polls one application and publishes its usable instances.
//!
//! * Every `poll_interval` (30 s by default, like Eureka's own clients) a **full fetch**
//!   `GET /apps/{APP}`; a 404 (no instance registered yet) is an empty set.
//! * With **delta fetches** on, the polls in between read `GET /apps/delta` (the server's
//!   recent changes, all applications) and apply this application's `ADDED`, `MODIFIED` and
//!   `DELETED` entries; a full fetch every `full_fetch_every` polls reconciles.
//! * Only instances whose `status` is in the configured set (only `UP` by default — go-kit's
//!   Eureka instancer publishes every status) are published; instances without an address or
//!   an enabled port are skipped with a warning.
//! * Any failure (all servers down, 5xx, timeout, malformed JSON, a body above the bound) is an
//!   error event — subscribers keep the last good set — and the next poll comes after a capped,
//!   jittered backoff.
//!
//! Stopping cancels the task at once; nothing is published after
//! [`stop`](sdkit_core::Instancer::stop) returns.

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use sdkit_core::instancer::sleep_or_cancel;
use sdkit_core::{
    CancellationToken, Instance, InstanceCache, SourceError, Subscription, TaskInstancer,
};

use crate::client::{Client, status_error};
use crate::config::{Config, InstancerConfig};
use crate::error::Error;
use crate::wire::{self, Entry};

/// Polls one Eureka application. See the [module docs](self).
///
/// ```no_run
/// use std::time::Duration;
/// use sdkit_core::Instancer as _;
/// use sdkit_eureka::{Config, Instancer, InstancerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::new(["10.0.0.1:8761", "10.0.0.2:8761"]);
/// let instancer = Instancer::from_config(config, InstancerConfig::new("web"))?;
/// let snapshot = instancer.subscribe().ready(Duration::from_secs(5)).await?;
/// println!("{} UP instances", snapshot.len());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Instancer {
    task: TaskInstancer,
    app: String,
}

impl Instancer {
    /// Polls `config.app()` through `client`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the application name is empty or the interval is zero.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn new(client: &Client, config: InstancerConfig) -> Result<Instancer, Error> {
        if config.app().is_empty() || config.poll_interval().is_zero() {
            return Err(Error::Config(
                "an application name and a positive poll interval are required".into(),
            ));
        }
        let app = config.app().to_owned();
        let client = client.clone();
        let task = TaskInstancer::spawn("eureka", move |cache, token| {
            Poll {
                path: format!("/apps/{}", Client::segment(config.app())),
                client,
                config,
                cache,
                token,
                known: BTreeMap::new(),
                polls: 0,
            }
            .run()
        });
        Ok(Instancer { task, app })
    }

    /// Polls with a client of its own.
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

    /// The application name (upper case).
    pub fn app(&self) -> &str {
        &self.app
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

/// The state of one instancer's loop.
struct Poll {
    client: Client,
    config: InstancerConfig,
    /// `/apps/{APP}`.
    path: String,
    cache: InstanceCache,
    token: CancellationToken,
    /// Every instance of the application by id, whatever its status.
    known: BTreeMap<String, Entry>,
    /// Successful polls so far (0 = the next one must be a full fetch).
    polls: u32,
}

impl Poll {
    async fn run(mut self) {
        let mut backoff = self.config.backoff().start();
        loop {
            let token = self.token.clone();
            let result = tokio::select! {
                _ = token.cancelled() => return,
                result = self.fetch() => result,
            };
            let delay = match result {
                Ok(()) => {
                    backoff.reset();
                    self.polls = self.polls.wrapping_add(1);
                    self.publish();
                    self.config.poll_interval()
                }
                Err(error) => {
                    let delay = backoff.next_delay().min(self.config.poll_interval());
                    tracing::warn!(app = %self.config.app(), %error, ?delay, failures = backoff.failures(), "eureka: fetch failed; keeping the last set");
                    self.cache.error(SourceError::new(error));
                    delay
                }
            };
            if !sleep_or_cancel(&self.token, delay).await {
                return;
            }
        }
    }

    /// One poll: a full fetch, or a delta when enabled and not due for a full one.
    async fn fetch(&mut self) -> Result<(), Error> {
        let (delta, every) = self.config.delta();
        if delta && !self.polls.is_multiple_of(every) {
            self.fetch_delta().await
        } else {
            self.fetch_full().await
        }
    }

    async fn fetch_full(&mut self) -> Result<(), Error> {
        let answer = self.client.send(Method::GET, &self.path, None).await?;
        let entries = match answer.status {
            StatusCode::OK => {
                wire::parse_application(&answer.body).map_err(|reason| Error::Malformed {
                    url: answer.url.clone(),
                    reason,
                })?
            }
            // Eureka answers 404 for an application without any registered instance.
            StatusCode::NOT_FOUND => Vec::new(),
            _ => return Err(status_error(&Method::GET, &answer)),
        };
        self.known = entries.into_iter().map(|e| (e.id.clone(), e)).collect();
        Ok(())
    }

    async fn fetch_delta(&mut self) -> Result<(), Error> {
        let answer = self.client.send(Method::GET, "/apps/delta", None).await?;
        if answer.status != StatusCode::OK {
            return Err(status_error(&Method::GET, &answer));
        }
        let entries = wire::parse_delta(&answer.body, self.config.app()).map_err(|reason| {
            Error::Malformed {
                url: answer.url.clone(),
                reason,
            }
        })?;
        for entry in entries {
            if entry.action.as_deref() == Some("DELETED") {
                self.known.remove(&entry.id);
            } else {
                self.known.insert(entry.id.clone(), entry);
            }
        }
        Ok(())
    }

    /// Publishes the instances with a published status (also clearing a previous error).
    fn publish(&self) {
        let statuses = self.config.statuses();
        let instances: Vec<Instance> = self
            .known
            .values()
            .filter(|e| statuses.contains(&e.status))
            .filter_map(|e| match &e.instance {
                Ok(instance) => Some(instance.clone()),
                Err(reason) => {
                    tracing::warn!(app = %self.config.app(), id = %e.id, %reason, "eureka: skipping an unusable instance");
                    None
                }
            })
            .collect();
        self.cache.update(instances);
    }
}
