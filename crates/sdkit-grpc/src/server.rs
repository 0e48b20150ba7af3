//! [`Server`]: bind, register, serve, and on shutdown deregister *before* draining.
//!
//! The seeds' server side: a gRPC server registers itself in the registry so clients find it.
//! The order on shutdown matters — deregistering first means clients stop picking the server
//! while it still answers the calls they already sent; draining first would refuse calls that
//! clients keep sending until the registry tells them.
//!
//! ```no_run
//! use sdkit_core::{FixedInstancer, Instance, Registrar};
//! use sdkit_grpc::Server;
//! use tonic::service::Routes;
//! # async fn f(registrar_for: impl Fn(Instance) -> Box<dyn Registrar>, routes: Routes) -> Result<(), sdkit_grpc::Error> {
//! let server = Server::bind("127.0.0.1:0".parse().unwrap()).await?;
//! // The instance to register: this server's address (the port the OS chose).
//! let registrar = registrar_for(Instance::from_addr(server.local_addr().to_string()));
//! server
//!     .serve(routes, registrar.as_ref(), async { let _ = tokio::signal::ctrl_c().await; })
//!     .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;

use sdkit_core::Registrar;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

use crate::error::Error;

/// A bound gRPC server, not yet serving. See the [module docs](self).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// [`Error::Serve`] when the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<Server, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Serve(format!("cannot bind {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Serve(format!("local address of {addr}: {e}")))?;
        Ok(Server { listener, addr })
    }

    /// The bound address (with the chosen port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `routes`, registers through `registrar` (in the background: serving does not wait
    /// for the registry), and when `shutdown` resolves: deregisters (bounded by the
    /// registrar's own deregister timeout), then stops accepting and drains in-flight calls.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when serving fails. A registry that cannot be reached is logged
    /// and retried by the registrar, never an error here.
    pub async fn serve<R, F>(self, routes: Routes, registrar: &R, shutdown: F) -> Result<(), Error>
    where
        R: Registrar + ?Sized,
        F: Future<Output = ()>,
    {
        let (drain, drained) = tokio::sync::oneshot::channel::<()>();
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let mut serving = tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = drained.await;
                }),
        );
        let addr = self.addr;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut registering = std::pin::pin!(registrar.register());
        let mut registered = false;
        loop {
            tokio::select! {
                result = &mut registering, if !registered => {
                    registered = true;
                    match result {
                        Ok(()) => tracing::info!(%addr, "grpc server registered"),
                        Err(error) => tracing::warn!(%addr, %error, "grpc server: registration failed"),
                    }
                }
                () = &mut shutdown => break,
                ended = &mut serving => {
                    // The server stopped by itself: an I/O failure. Leave the registry too.
                    if let Err(error) = registrar.deregister().await {
                        tracing::warn!(%addr, %error, "grpc server: deregistration failed");
                    }
                    return match ended {
                        Ok(result) => result.map_err(Error::from),
                        Err(join) => Err(Error::Serve(format!("server task: {join}"))),
                    };
                }
            }
        }
        tracing::info!(%addr, "grpc server: deregistering, then draining");
        if let Err(error) = registrar.deregister().await {
            tracing::warn!(%addr, %error, "grpc server: deregistration failed");
        }
        let _ = drain.send(());
        match serving.await {
            Ok(result) => result.map_err(Error::from),
            Err(join) => Err(Error::Serve(format!("server task: {join}"))),
        }
    }
}
