//! [`Error`]: what building a channel or serving can fail with.

use crate::service_config::ServiceConfigError;

/// An error of sdkit-grpc.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (an unknown policy, a bad address).
    #[error("grpc: {0}")]
    Config(String),
    /// The service config JSON is malformed; names the field.
    #[error(transparent)]
    ServiceConfig(#[from] ServiceConfigError),
    /// Binding, serving or registering failed.
    #[error("grpc server: {0}")]
    Serve(String),
    /// The registry URL or its backend refused (from the facade's `sdkit::grpc::channel`).
    #[error("grpc: registry: {0}")]
    Registry(#[source] sdkit_core::BoxError),
    /// A transport error from tonic.
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}
