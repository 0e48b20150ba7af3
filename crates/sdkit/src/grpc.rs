//! gRPC over any registry (feature `grpc`): everything of [`sdkit_grpc`], plus channels and
//! servers addressed by a [`Target`] URL.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Every tonic-generated client takes the channel as is:
//! // let mut client = GreeterClient::new(sdkit::grpc::channel("etcd://127.0.0.1:2379/services/greeter")?);
//! let channel = sdkit::grpc::channel("discovery://127.0.0.1:7171/demo.greeter?env=dev")?;
//! # let _ = channel; Ok(()) }
//! ```
//!
//! A `discovery://` target reads each instance's `grpc://` address (its default `scheme`).

pub use sdkit_grpc::*;

use crate::Target;

/// A round-robin channel over the registry named by `url` (any [`Target`] scheme). The channel
/// owns the instancer; dropping its last clone stops everything.
///
/// # Errors
///
/// [`Error::Registry`] when the URL is malformed or the backend refuses it.
///
/// # Panics
///
/// Outside a Tokio runtime.
pub fn channel(url: &str) -> Result<Channel, Error> {
    channel_with(url, Config::default())
}

/// Like [`channel()`], with a [`Config`] (policy, service config, TLS, connector…).
///
/// # Errors
///
/// As [`channel()`], plus [`Error::Config`] / [`Error::ServiceConfig`] for a bad configuration.
pub fn channel_with(url: &str, config: Config) -> Result<Channel, Error> {
    let target: Target = url.parse().map_err(|e| Error::Registry(Box::new(e)))?;
    target_channel(&target, config)
}

/// A channel over an already parsed [`Target`].
///
/// # Errors
///
/// As [`channel_with`].
pub fn target_channel(target: &Target, config: Config) -> Result<Channel, Error> {
    let instancer = target
        .instancer()
        .map_err(|e| Error::Registry(Box::new(e)))?;
    Channel::owning(instancer, config)
}
