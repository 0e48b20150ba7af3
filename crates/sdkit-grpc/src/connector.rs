//! Connectors: how a channel opens the transport to one endpoint.
//!
//! The default is a TCP connector (`TCP_NODELAY` on, the configured connect timeout). A user
//! connector — any `tower::Service<http::Uri>` returning a hyper I/O object (Unix sockets, a
//! proxy, an in-memory pipe…) — replaces it through [`Connector::new`]. TLS, when configured, is
//! layered on top by tonic either way.
//!
//! Every endpoint wraps its connector in a *watching* connector: a connection that cannot be
//! opened, or one that ends, is reported to the endpoint's connection state, which marks the
//! endpoint not ready and reconnects with backoff in the background (see `conn_state`).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt;
use hyper_util::client::legacy::connect::HttpConnector;
use sdkit_core::BoxError;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::conn_state::ConnState;

/// Any transport stream a connector yields: hyper's read/write traits.
pub trait Io: rt::Read + rt::Write + Send + Unpin + 'static {}

impl<T: rt::Read + rt::Write + Send + Unpin + 'static> Io for T {}

/// A connected stream, boxed.
pub struct BoxedIo(Pin<Box<dyn Io>>, Option<Closed>);

impl BoxedIo {
    /// Boxes a stream.
    pub fn new(io: impl Io) -> Self {
        BoxedIo(Box::pin(io), None)
    }
}

impl fmt::Debug for BoxedIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxedIo")
    }
}

impl BoxedIo {
    /// The transport ended (end of stream or an I/O error): the endpoint is marked not ready
    /// now, before hyper fails the calls on it, so the caller's next pick already avoids it
    /// (dropping the connection, later, reports the same again, which is a no-op).
    fn ended(&self) {
        if let Some(closed) = &self.1 {
            closed.state.closed(closed.generation);
        }
    }
}

/// The most a read takes at once through [`BoxedIo`]'s buffer (hyper reads in 8 KiB steps).
const READ_CHUNK: usize = 16 * 1024;

impl rt::Read for BoxedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.1.is_none() {
            return self.0.as_mut().poll_read(cx, buf);
        }
        // A watched connection reads through a buffer of its own to see an end of stream
        // (a read that fills nothing): hyper's cursor does not tell how much a read filled.
        // The buffer is uninitialised (no memset); only what was read is copied.
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let want = buf.remaining().min(READ_CHUNK);
        let mut scratch = rt::ReadBuf::uninit(&mut chunk[..want]);
        match self.0.as_mut().poll_read(cx, scratch.unfilled()) {
            Poll::Ready(Ok(())) => {
                let filled = scratch.filled();
                if filled.is_empty() && want > 0 {
                    self.ended();
                }
                buf.put_slice(filled);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => {
                self.ended();
                Poll::Ready(Err(error))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl rt::Write for BoxedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = self.0.as_mut().poll_write(cx, buf);
        if let Poll::Ready(Err(_)) = &result {
            self.ended();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = self.0.as_mut().poll_write_vectored(cx, bufs);
        if let Poll::Ready(Err(_)) = &result {
            self.ended();
        }
        result
    }
}

/// Opens transport connections: the default TCP connector or a user's. Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    inner: BoxCloneSyncService<Uri, BoxedIo, BoxError>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connector")
    }
}

impl Connector {
    /// A user connector: any cloneable `Service<Uri>` yielding a hyper I/O stream.
    ///
    /// ```
    /// use hyper_util::client::legacy::connect::HttpConnector;
    /// use sdkit_grpc::Connector;
    ///
    /// let mut http = HttpConnector::new();
    /// http.set_nodelay(true);
    /// http.enforce_http(false);
    /// let connector = Connector::new(http);
    /// # let _ = connector;
    /// ```
    pub fn new<C>(connector: C) -> Self
    where
        C: Service<Uri> + Clone + Send + Sync + 'static,
        C::Response: Io,
        C::Error: Into<BoxError>,
        C::Future: Send + 'static,
    {
        let inner = connector.map_response(BoxedIo::new).map_err(Into::into);
        Connector {
            inner: BoxCloneSyncService::new(inner),
        }
    }

    /// The default: TCP with `TCP_NODELAY`, each connect bounded by `connect_timeout`.
    pub fn tcp(connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        Connector::new(http)
    }

    /// Opens one connection (the reconnect probe).
    pub(crate) fn connect(
        &self,
        uri: Uri,
    ) -> impl Future<Output = Result<BoxedIo, BoxError>> + Send + 'static {
        self.inner.clone().oneshot(uri)
    }

    /// This connector, reporting to `state`.
    pub(crate) fn watching(&self, state: Arc<ConnState>) -> Watching {
        Watching {
            inner: self.inner.clone(),
            state,
        }
    }
}

/// A connector that reports connects, failures and closed connections to a [`ConnState`].
#[derive(Clone)]
pub(crate) struct Watching {
    inner: BoxCloneSyncService<Uri, BoxedIo, BoxError>,
    state: Arc<ConnState>,
}

/// A connect attempt failed: nothing of any request was sent. Found in an error's chain, it
/// makes the call safe to retry on another endpoint.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {addr}: {source}")]
pub struct ConnectFailed {
    addr: String,
    #[source]
    source: BoxError,
}

impl Service<Uri> for Watching {
    type Response = BoxedIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<BoxedIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let state = Arc::clone(&self.state);
        let connect = self.inner.call(uri);
        Box::pin(async move {
            match connect.await {
                Ok(mut io) => {
                    let generation = state.connected();
                    io.1 = Some(Closed { state, generation });
                    Ok(io)
                }
                Err(source) => {
                    state.connect_failed();
                    Err(Box::new(ConnectFailed {
                        addr: state.addr().to_string(),
                        source,
                    }) as BoxError)
                }
            }
        })
    }
}

/// Carried by a live connection: when its stream ends or fails (seen by the read or write
/// that meets it) or hyper drops the connection (the peer closed it, a GOAWAY) the endpoint
/// is marked not ready.
struct Closed {
    state: Arc<ConnState>,
    generation: u64,
}

impl Drop for Closed {
    fn drop(&mut self) {
        self.state.closed(self.generation);
    }
}
