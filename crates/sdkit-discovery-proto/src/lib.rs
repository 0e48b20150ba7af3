//! Wire model of the [bilibili discovery] HTTP API, written once for both sides.
//!
//! The embedded registry (`sdkit-discovery-server`) decodes requests and encodes replies with
//! these types; the discovery client (`sdkit-discovery`) does the opposite. Nothing here does
//! I/O: it is the JSON shapes, the reply envelope, the error codes, the urlencoded forms with
//! repeated keys, and the typed request arguments with their validation.
//!
//! * [`Instance`], [`InstanceInfo`], [`Node`]: the JSON objects, field names exact, timestamps
//!   as `i64` nanoseconds (never routed through `f64`).
//! * [`Reply`]: the `{code, message, ttl, data}` envelope (plus `error` for `polls`), and
//!   [`decode_reply`] to parse one with a size bound.
//! * [`Code`]: the codes the reference server produces (0, -304, -400, -404, -409, -500) plus
//!   -509 for the embedded server's capacity limits.
//! * [`Form`]: `application/x-www-form-urlencoded` with repeated keys (`appid=a&appid=b`).
//! * [`args`]: one typed struct per request (`RegisterArgs`, `PollsArgs`, …) with
//!   `to_form` (client side) and `from_form` (server side, validating against [`FieldLimits`]).
//! * [`split_addrs`]: undoes the reference's comma-joined `addrs` replication bug.
//!
//! ```
//! use sdkit_discovery_proto::{args::FetchArgs, decode_reply, Code, Endpoint, InstanceInfo, Reply};
//!
//! // Client side: build the query of a fetch …
//! let args = FetchArgs { env: "dev".into(), appid: "demo.app".into(), status: 1, zone: String::new() };
//! assert_eq!(Endpoint::Fetch.path(), "/discovery/fetch");
//! assert_eq!(args.to_form().encode(), "env=dev&appid=demo.app&status=1");
//!
//! // … and parse the answer with a size bound.
//! let body = br#"{"code":0,"message":"0","ttl":1,"data":{"instances":{},"latest_timestamp":1700000000000000001}}"#;
//! let reply: Reply<InstanceInfo> = decode_reply(body, 1 << 20).unwrap();
//! assert_eq!(reply.code, Code::OK);
//! assert_eq!(reply.data.value().unwrap().latest_timestamp, 1_700_000_000_000_000_001);
//! ```
//!
//! [bilibili discovery]: https://github.com/bilibili/discovery
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod addrs;
pub mod args;
mod code;
mod endpoint;
mod envelope;
mod form;
mod instance;
mod metadata;
mod status;

pub use addrs::split_addrs;
pub use args::FieldLimits;
pub use code::Code;
pub use endpoint::{Endpoint, Method};
pub use envelope::{Data, DecodeError, Misses, Reply, decode_reply};
pub use form::{Form, FormError};
pub use instance::{INFRA_DISCOVERY, Instance, InstanceInfo, Node, NodeStatus};
pub use metadata::{Metadata, MetadataError, parse_metadata};
pub use status::{Status, StatusFilter};
