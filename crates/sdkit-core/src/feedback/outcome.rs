//! How a call ended ([`Outcome`]), why it failed ([`FailureClass`]), and the error wrapper
//! transports tag their errors with ([`Classified`]).

use std::error::Error as StdError;
use std::fmt;

use crate::error::{BoxError, NoEndpoints};

/// Why a call failed, as far as balancing and outlier detection care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureClass {
    /// The connection could not be made (refused, reset while connecting, DNS).
    ConnectFailed,
    /// The call or connection timed out.
    Timeout,
    /// The endpoint said it cannot serve now (gRPC `UNAVAILABLE`, HTTP 503, no endpoints).
    Unavailable,
    /// The endpoint failed the request (HTTP 5xx, gRPC `INTERNAL`…).
    ServerError,
    /// Anything else (unknown errors, application errors).
    Other,
}

impl FailureClass {
    /// The class of `error`: the first [`Classified`] in its `source()` chain, else a
    /// well-known error type (`std::io::Error` kinds, Tokio's and tower's timeouts,
    /// [`NoEndpoints`]), else [`Other`](Self::Other).
    ///
    /// ```
    /// use sdkit_core::BoxError;
    /// use sdkit_core::lb::{Classified, FailureClass};
    /// let refused: BoxError = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
    /// assert_eq!(FailureClass::of(&refused), FailureClass::ConnectFailed);
    /// let wrapped: BoxError = Classified::new(FailureClass::ServerError, "HTTP 502").into();
    /// assert_eq!(FailureClass::of(&wrapped), FailureClass::ServerError);
    /// assert_eq!(FailureClass::of(&BoxError::from("boom")), FailureClass::Other);
    /// ```
    pub fn of(error: &BoxError) -> FailureClass {
        let mut current: Option<&(dyn StdError + 'static)> = Some(&**error);
        while let Some(e) = current {
            if let Some(c) = e.downcast_ref::<Classified>() {
                return c.class;
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind as K;
                match io.kind() {
                    K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::AddrNotAvailable => return FailureClass::ConnectFailed,
                    K::TimedOut => return FailureClass::Timeout,
                    _ => {}
                }
            }
            if e.is::<tokio::time::error::Elapsed>() || e.is::<tower::timeout::error::Elapsed>() {
                return FailureClass::Timeout;
            }
            if e.is::<NoEndpoints>() {
                return FailureClass::Unavailable;
            }
            current = e.source();
        }
        FailureClass::Other
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed.
    Failure(FailureClass),
    /// It was dropped before it ended (neither a success nor a failure).
    Cancelled,
}

/// An error tagged with its [`FailureClass`]: transports wrap their errors in it so that the
/// call layer ([`FailureClass::of`]) knows what happened. `Display` and `source()` are the
/// inner error's.
#[derive(Debug)]
pub struct Classified {
    class: FailureClass,
    source: BoxError,
}

impl Classified {
    /// Tags `error` with `class`.
    pub fn new(class: FailureClass, error: impl Into<BoxError>) -> Self {
        Classified {
            class,
            source: error.into(),
        }
    }

    /// The class.
    pub fn class(&self) -> FailureClass {
        self.class
    }

    /// The inner error.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl StdError for Classified {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}
