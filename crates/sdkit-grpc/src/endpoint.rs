//! One endpoint per instance: a lazily connected tonic channel and its connection state.
//!
//! The [`Endpointer`](sdkit_core::Endpointer) calls the factory for each new instance and drops
//! the endpoint when the instance leaves; the tonic channel then closes its connection and the
//! endpoint's reconnect task stops.
//!
//! Addresses: `host:port` is dialled as `http://host:port` (or `https://` with TLS); an instance
//! that publishes a URL may say `grpc://` (plain) or `grpcs://` (TLS), or `http(s)://`.

use std::fmt;
use std::sync::Arc;

use http::Uri;
use sdkit_core::lb::EndpointState;
use sdkit_core::{BoxError, Factory, Instance};
use tokio::sync::watch;
use tonic::transport::Channel as TonicChannel;

use crate::config::Config;
use crate::conn_state::ConnState;
use crate::connector::Connector;
use crate::reconnect::{TaskGuard, spawn_reconnect};

/// One instance's channel. Cheap to clone; the last clone closes the connection.
#[derive(Clone)]
pub struct GrpcEndpoint {
    pub(crate) channel: TonicChannel,
    pub(crate) state: Arc<ConnState>,
    _reconnect: Arc<TaskGuard>,
}

impl fmt::Debug for GrpcEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcEndpoint")
            .field("addr", &self.state.addr())
            .field("ready", &self.state.is_ready())
            .finish()
    }
}

impl GrpcEndpoint {
    /// `false` while the endpoint's connection is known to be down.
    pub fn is_ready(&self) -> bool {
        self.state.is_ready()
    }

    /// `true` while a connection is established.
    pub fn is_connected(&self) -> bool {
        self.state.is_connected()
    }

    /// The tonic channel to this one instance.
    pub fn channel(&self) -> &TonicChannel {
        &self.channel
    }
}

/// Makes a [`GrpcEndpoint`] per instance.
pub(crate) struct EndpointFactory {
    config: Config,
    connector: Connector,
    changed: Arc<watch::Sender<u64>>,
}

impl EndpointFactory {
    pub(crate) fn new(config: Config, changed: Arc<watch::Sender<u64>>) -> Self {
        let connector = config
            .connector()
            .cloned()
            .unwrap_or_else(|| Connector::tcp(config.connect_timeout()));
        EndpointFactory {
            config,
            connector,
            changed,
        }
    }
}

/// The URI to dial for an instance address.
pub(crate) fn endpoint_uri(addr: &str, tls: bool) -> Result<Uri, BoxError> {
    let (scheme, rest) = match addr.split_once("://") {
        Some(("grpc" | "http", rest)) => ("http", rest),
        Some(("grpcs" | "https", rest)) => ("https", rest),
        Some((other, _)) => {
            return Err(format!(
                "address `{addr}`: scheme `{other}` is not gRPC (grpc, grpcs, http, https)"
            )
            .into());
        }
        None => (if tls { "https" } else { "http" }, addr),
    };
    if scheme == "https" && !tls {
        return Err(
            format!("address `{addr}` needs TLS; configure it with Config::with_tls").into(),
        );
    }
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() {
        return Err(format!("address `{addr}` has no host").into());
    }
    format!("{scheme}://{authority}")
        .parse::<Uri>()
        .map_err(|e| format!("address `{addr}`: {e}").into())
}

impl EndpointFactory {
    fn endpoint(
        &self,
        instance: &Instance,
        endpoint_state: Option<Arc<EndpointState>>,
    ) -> Result<GrpcEndpoint, BoxError> {
        let uri = endpoint_uri(instance.addr(), self.config.tls().is_some())?;
        let mut endpoint = tonic::transport::Endpoint::from(uri.clone())
            .connect_timeout(self.config.connect_timeout())
            .tcp_nodelay(true);
        if let Some(tls) = self.config.tls() {
            endpoint = endpoint.tls_config(tls.clone())?;
        }
        let state = Arc::new(ConnState::new(
            instance.addr(),
            Arc::clone(&self.changed),
            endpoint_state,
        ));
        let channel =
            endpoint.connect_with_connector_lazy(self.connector.watching(Arc::clone(&state)));
        let reconnect = spawn_reconnect(
            Arc::clone(&state),
            self.connector.clone(),
            uri,
            self.config.backoff(),
            self.config.connect_timeout(),
            self.config.tls().is_none(),
        );
        Ok(GrpcEndpoint {
            channel,
            state,
            _reconnect: Arc::new(reconnect),
        })
    }
}

impl Factory<GrpcEndpoint> for EndpointFactory {
    fn make(&self, instance: &Instance) -> Result<GrpcEndpoint, BoxError> {
        self.endpoint(instance, None)
    }

    /// Keeps the endpoint's shared state: connection failures clear its transport-ready bit.
    fn make_with_state(
        &self,
        instance: &Instance,
        state: &Arc<EndpointState>,
    ) -> Result<GrpcEndpoint, BoxError> {
        self.endpoint(instance, Some(Arc::clone(state)))
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_uri;

    #[test]
    fn addresses_map_to_uris() {
        assert_eq!(
            endpoint_uri("10.0.0.1:9000", false).unwrap(),
            "http://10.0.0.1:9000/"
        );
        assert_eq!(
            endpoint_uri("10.0.0.1:9000", true).unwrap(),
            "https://10.0.0.1:9000/"
        );
        assert_eq!(endpoint_uri("grpc://h:1/x", false).unwrap(), "http://h:1/");
        assert_eq!(endpoint_uri("grpcs://h:1", true).unwrap(), "https://h:1/");
        assert_eq!(
            endpoint_uri("[::1]:50051", false).unwrap(),
            "http://[::1]:50051/"
        );
        assert!(endpoint_uri("grpcs://h:1", false).is_err());
        assert!(endpoint_uri("tcp://h:1", false).is_err());
        assert!(endpoint_uri("grpc://", false).is_err());
    }
}
