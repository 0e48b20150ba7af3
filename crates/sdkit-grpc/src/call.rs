//! One call through a [`Channel`](crate::Channel): deadline, pick, attempts, retries.
//!
//! * The deadline is the smaller of the caller's (`grpc-timeout`) and the method config's
//!   `timeout`; the server is told the smaller one.
//! * With no ready endpoint the call waits — up to its deadline, or the channel's ready timeout
//!   when it has none — for the set or a connection to change, then fails with a status saying
//!   how many endpoints there were and why none was ready (`waitForReady: false` fails at once).
//! * A connect failure means nothing was sent: the call moves to another endpoint at once
//!   (gRPC's transparent retry), without using a retry attempt.
//! * With a `retryPolicy`, a trailers-only response whose status is retryable, or a transport
//!   error while `UNAVAILABLE` is retryable, is retried on another endpoint after the policy's
//!   backoff (or the server's `grpc-retry-pushback-ms`), within `maxAttempts`, the deadline, the
//!   retry buffer and the throttling bucket.
//!
//! The response carries a [`Served`] extension: the address that answered and the attempts.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response};
use sdkit_core::lb::{Classified, FailureClass};
use sdkit_core::{BoxError, EndpointKey};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::ServiceExt;

use crate::connector::ConnectFailed;
use crate::inner::Inner;
use crate::picker::Pick;
use crate::replay::Replay;
use crate::service_config::{MethodConfig, RetryPolicy};

/// Transparent retries per call (each on another endpoint).
const MAX_TRANSPARENT: u32 = 8;

/// Which endpoint answered a call, as a response extension.
///
/// ```no_run
/// # async fn f(response: tonic::Response<()>) {
/// if let Some(served) = response.extensions().get::<sdkit_grpc::Served>() {
///     println!("{} after {} attempt(s)", served.addr(), served.attempts());
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Served {
    addr: Arc<str>,
    attempts: u32,
}

impl Served {
    /// The instance address that answered.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Attempts made, transparent retries included (1 = first try).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// Runs one call.
pub(crate) async fn run(
    inner: Arc<Inner>,
    request: Request<Body>,
) -> Result<Response<Body>, BoxError> {
    let method = if inner.service_config.has_method_configs() {
        inner.service_config.method(request.uri().path()).cloned()
    } else {
        None
    };
    let (mut parts, body) = request.into_parts();
    let start = Instant::now();
    let caller = parts
        .headers
        .get("grpc-timeout")
        .and_then(parse_grpc_timeout);
    let timeout = match (caller, method.as_ref().and_then(MethodConfig::timeout)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(t) = timeout
        && Some(t) != caller
        && let Ok(value) = HeaderValue::from_str(&format_grpc_timeout(t))
    {
        parts.headers.insert("grpc-timeout", value);
    }
    let deadline = timeout.map(|t| start + t);
    let replay = Replay::new(body, inner.retry_buffer);
    let hash = crate::request_hash::of_request(&parts, inner.request_hash_header.as_ref());
    let attempt = Attempts {
        inner: &inner,
        parts: &parts,
        hash,
        deadline,
        ready_deadline: deadline.unwrap_or(start + inner.ready_timeout),
        wait_for_ready: method
            .as_ref()
            .and_then(MethodConfig::wait_for_ready)
            .unwrap_or(true),
        retry: method.as_ref().and_then(MethodConfig::retry_policy),
    };
    attempt.run(&replay).await
}

struct Attempts<'a> {
    inner: &'a Inner,
    parts: &'a Parts,
    /// The call's request hash, for consistent-hashing policies.
    hash: Option<u64>,
    deadline: Option<Instant>,
    ready_deadline: Instant,
    wait_for_ready: bool,
    retry: Option<&'a RetryPolicy>,
}

impl Attempts<'_> {
    async fn run(&self, replay: &Replay) -> Result<Response<Body>, BoxError> {
        let mut backoff = self.retry.map(|r| r.backoff().start());
        let mut attempts = 0u32;
        let mut retries = 0u32;
        let mut transparent = 0u32;
        let mut avoid: Vec<EndpointKey> = Vec::new();
        loop {
            let Pick {
                endpoint,
                key,
                guard,
            } = self.pick(&avoid).await?;
            attempts += 1;
            let request = self.request(replay);
            let call = endpoint.channel.clone().oneshot(request);
            let result = match self.deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, call).await {
                    Ok(result) => result,
                    Err(_) => {
                        guard.failure(FailureClass::Timeout);
                        return Err(self.deadline_exceeded("waiting for the response"));
                    }
                },
                None => call.await,
            };
            avoid.push(key);
            let (code, class) = match &result {
                Ok(response) => {
                    let code =
                        Status::from_header_map(response.headers()).map_or(Code::Ok, |s| s.code());
                    (code, failure_class(code))
                }
                Err(error) if nothing_sent(error) => {
                    (Code::Unavailable, Some(FailureClass::ConnectFailed))
                }
                Err(_) => (Code::Unavailable, Some(FailureClass::Unavailable)),
            };
            match class {
                Some(class) => guard.failure(class),
                None => guard.success(),
            }
            if class == Some(FailureClass::ConnectFailed)
                && replay.can_replay()
                && transparent < MAX_TRANSPARENT
            {
                // Nothing was sent: any other endpoint may take the call (gRPC's transparent retry).
                transparent += 1;
                tracing::debug!(addr = %endpoint.state.addr(), "grpc: connect failed; transparent retry on another endpoint");
                continue;
            }
            let retryable = self.retry.is_some_and(|r| r.is_retryable(code));
            if let Some(throttle) = &self.inner.throttle {
                if retryable {
                    throttle.failure();
                } else {
                    throttle.success();
                }
            }
            let may_retry = retryable
                && self.retry.is_some_and(|r| retries + 1 < r.max_attempts())
                && self
                    .inner
                    .throttle
                    .as_ref()
                    .is_none_or(|t| t.allows_retry())
                && replay.can_replay();
            let delay = match (&result, may_retry) {
                (_, false) => None,
                (Ok(response), true) => match pushback(response.headers()) {
                    Pushback::None => backoff.as_mut().map(|b| b.next_delay()),
                    Pushback::Delay(d) => Some(d),
                    Pushback::Stop => None,
                },
                (Err(_), true) => backoff.as_mut().map(|b| b.next_delay()),
            };
            match (delay, result) {
                (Some(delay), _) if self.deadline.is_none_or(|d| Instant::now() + delay < d) => {
                    retries += 1;
                    tokio::time::sleep(delay).await;
                }
                (_, Ok(mut response)) => {
                    response.extensions_mut().insert(Served {
                        addr: Arc::clone(endpoint.state.addr()),
                        attempts,
                    });
                    return Ok(response);
                }
                (_, Err(error)) => {
                    let class = class.unwrap_or(FailureClass::Unavailable);
                    return Err(Box::new(Classified::new(class, error)));
                }
            }
        }
    }

    /// The next attempt's request: the caller's head and a replay of its body.
    fn request(&self, replay: &Replay) -> Request<Body> {
        let mut request = Request::new(replay.attempt());
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = self.parts.uri.clone();
        *request.version_mut() = self.parts.version;
        *request.headers_mut() = self.parts.headers.clone();
        *request.extensions_mut() = self.parts.extensions.clone();
        request
    }

    /// A ready endpoint (not one in `avoid` if another is ready), waiting for one if none is.
    async fn pick(&self, avoid: &[EndpointKey]) -> Result<Pick, BoxError> {
        let set = self.inner.endpointer.endpoint_set();
        loop {
            let mut changed = self.inner.changed.subscribe();
            let version = set.version();
            let (total, source_error) = {
                let endpoints = set.load();
                if let Some(pick) = self.inner.picker.pick(&endpoints, avoid, self.hash) {
                    return Ok(pick);
                }
                (endpoints.len(), endpoints.error().map(ToString::to_string))
            };
            let why = match (total, source_error) {
                (0, Some(error)) => format!("no endpoints (the registry is failing: {error})"),
                (0, None) => "no endpoints".to_owned(),
                (n, _) => format!("none of {n} endpoints is ready (all connections failed)"),
            };
            if !self.wait_for_ready {
                return Err(Box::new(Status::unavailable(format!(
                    "{}: {why}",
                    self.parts.uri.path()
                ))));
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = set.changed_since(version) => {}
                _ = tokio::time::sleep_until(self.ready_deadline) => {
                    return Err(match self.deadline {
                        Some(_) => self.deadline_exceeded(&why),
                        None => Box::new(Status::unavailable(format!(
                            "{}: {why} within the ready timeout of {:?}",
                            self.parts.uri.path(),
                            self.inner.ready_timeout
                        ))),
                    });
                }
            }
        }
    }

    fn deadline_exceeded(&self, doing: &str) -> BoxError {
        Box::new(Status::deadline_exceeded(format!(
            "{}: deadline exceeded: {doing}",
            self.parts.uri.path()
        )))
    }
}

/// How an endpoint's answer counts for balancing: `None` for a success or an application
/// error (NOT_FOUND is the caller's problem, not the endpoint's).
fn failure_class(code: Code) -> Option<FailureClass> {
    match code {
        Code::Unavailable | Code::ResourceExhausted => Some(FailureClass::Unavailable),
        Code::DeadlineExceeded => Some(FailureClass::Timeout),
        Code::Internal | Code::Unknown | Code::DataLoss => Some(FailureClass::ServerError),
        _ => None,
    }
}

/// `true` when the error says the connection was never established: no byte of the request
/// left, so any endpoint may take it.
fn nothing_sent(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<ConnectFailed>() || e.is::<tonic::ConnectError>() {
            return true;
        }
        current = e.source();
    }
    false
}

enum Pushback {
    None,
    Delay(Duration),
    Stop,
}

/// `grpc-retry-pushback-ms`: a delay, or (negative or malformed) "do not retry".
fn pushback(headers: &HeaderMap) -> Pushback {
    match headers.get("grpc-retry-pushback-ms") {
        None => Pushback::None,
        Some(value) => match value.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
            Some(ms) => Pushback::Delay(Duration::from_millis(ms)),
            None => Pushback::Stop,
        },
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub(crate) fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let s = value.to_str().ok()?;
    if s.len() < 2 || s.len() > 9 {
        return None;
    }
    let (digits, unit) = s.split_at(s.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats a `grpc-timeout` value in the finest unit that fits 8 digits.
pub(crate) fn format_grpc_timeout(t: Duration) -> String {
    const MAX: u128 = 99_999_999;
    if t.as_micros() <= MAX {
        format!("{}u", t.as_micros().max(1))
    } else if t.as_millis() <= MAX {
        format!("{}m", t.as_millis())
    } else if u128::from(t.as_secs()) <= MAX {
        format!("{}S", t.as_secs())
    } else {
        format!("{}H", (t.as_secs() / 3600).min(99_999_999))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_round_trips() {
        for t in [
            Duration::from_micros(1),
            Duration::from_millis(1500),
            Duration::from_secs(200),
            Duration::from_secs(86_400 * 30),
        ] {
            let text = format_grpc_timeout(t);
            let back = parse_grpc_timeout(&HeaderValue::from_str(&text).unwrap()).unwrap();
            assert!(
                back <= t && t - back < Duration::from_secs(3600),
                "{t:?} → {text} → {back:?}"
            );
        }
        for bad in ["", "5", "123456789S", "5x", "-5S", "S"] {
            assert_eq!(
                parse_grpc_timeout(&HeaderValue::from_str(bad).unwrap()),
                None,
                "{bad}"
            );
        }
    }
}
