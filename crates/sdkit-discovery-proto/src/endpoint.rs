//! The ten endpoints under `/discovery` and the HTTP method each one requires.

/// An HTTP method the discovery API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`: reads and long polls; parameters in the query string.
    Get,
    /// `POST`: writes; parameters urlencoded in the body (or the query string).
    Post,
}

impl Method {
    /// The method name, `"GET"` or `"POST"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One endpoint of the discovery API.
///
/// ```
/// use sdkit_discovery_proto::{Endpoint, Method};
/// let e = Endpoint::from_path("/discovery/fetch/all").unwrap();
/// assert_eq!(e, Endpoint::FetchAll);
/// assert_eq!(e.method(), Method::Get);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /discovery/register`
    Register,
    /// `POST /discovery/renew`
    Renew,
    /// `POST /discovery/cancel`
    Cancel,
    /// `POST /discovery/set`
    Set,
    /// `GET /discovery/fetch`
    Fetch,
    /// `GET /discovery/fetchs`
    Fetchs,
    /// `GET /discovery/fetch/all`
    FetchAll,
    /// `GET /discovery/poll`
    Poll,
    /// `GET /discovery/polls`
    Polls,
    /// `GET /discovery/nodes`
    Nodes,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 10] = [
        Endpoint::Register,
        Endpoint::Renew,
        Endpoint::Cancel,
        Endpoint::Set,
        Endpoint::Fetch,
        Endpoint::Fetchs,
        Endpoint::FetchAll,
        Endpoint::Poll,
        Endpoint::Polls,
        Endpoint::Nodes,
    ];

    /// The request path, e.g. `/discovery/polls`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Register => "/discovery/register",
            Endpoint::Renew => "/discovery/renew",
            Endpoint::Cancel => "/discovery/cancel",
            Endpoint::Set => "/discovery/set",
            Endpoint::Fetch => "/discovery/fetch",
            Endpoint::Fetchs => "/discovery/fetchs",
            Endpoint::FetchAll => "/discovery/fetch/all",
            Endpoint::Poll => "/discovery/poll",
            Endpoint::Polls => "/discovery/polls",
            Endpoint::Nodes => "/discovery/nodes",
        }
    }

    /// The only method the endpoint accepts (others get HTTP 405).
    pub fn method(self) -> Method {
        match self {
            Endpoint::Register | Endpoint::Renew | Endpoint::Cancel | Endpoint::Set => Method::Post,
            _ => Method::Get,
        }
    }

    /// The endpoint serving `path` (without query string), if any.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }
}
