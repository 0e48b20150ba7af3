//! The metrics listener: `GET /metrics` on a port of its own, apart from the API so that
//! the API's connection limits, access control and protect mode never hide the figures.

use crate::error::ServeError;
use crate::server::Handle;
use crate::shared::Shared;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// The exposition's content type (Prometheus text format 0.0.4).
const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Most connections open at once on the metrics listener; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 16;
/// Longest wait for request headers (idle keep-alive included).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

impl Handle {
    /// The registry's metrics in the Prometheus text exposition format (0.0.4): requests by
    /// route and code, parked polls, apps, instances, evictions, self-preservation,
    /// connections, and the process's own `process_*` figures (Linux).
    ///
    /// ```
    /// let server = sdkit_discovery_server::Server::builder().build().unwrap();
    /// let text = server.handle().metrics();
    /// assert!(text.contains("# TYPE sdkit_discovery_instances gauge"));
    /// ```
    pub fn metrics(&self) -> String {
        super::render(&self.shared)
    }

    /// Serves `GET /metrics` on `listener` until the server shuts down ([`Handle::shutdown`],
    /// or the serve future returning). Other paths answer 404, other methods 405.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use sdkit_discovery_server::Server;
    /// use tokio::net::TcpListener;
    ///
    /// let server = Server::builder().build()?;
    /// let handle = server.handle();
    /// let metrics = TcpListener::bind("127.0.0.1:9171").await?;
    /// tokio::spawn(async move { handle.serve_metrics(metrics).await });
    /// server.serve(TcpListener::bind("127.0.0.1:7171").await?).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_metrics(&self, listener: TcpListener) -> Result<(), ServeError> {
        let shared = Arc::clone(&self.shared);
        let addr = listener.local_addr()?;
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .keep_alive(true);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut tasks = JoinSet::new();
        info!(%addr, "metrics listening");
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = shared.shutdown.cancelled() => break,
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let http = http.clone();
                        let shared = Arc::clone(&shared);
                        tasks.spawn(async move {
                            let _permit = permit;
                            let service = service_fn(|req| {
                                let resp = answer(&shared, &req);
                                async move { Ok::<_, Infallible>(resp) }
                            });
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            tokio::pin!(conn);
                            let result = tokio::select! {
                                r = conn.as_mut() => r,
                                () = shared.shutdown.cancelled() => {
                                    conn.as_mut().graceful_shutdown();
                                    conn.await
                                }
                            };
                            if let Err(e) = result {
                                debug!(%peer, error = %e, "metrics connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next() => {}
                () = shared.shutdown.cancelled() => break,
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(shared.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.shutdown().await;
        Ok(())
    }
}

/// The answer to one request on the metrics listener.
fn answer<B>(shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 method not allowed\n".into(),
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let mut resp = Response::new(Full::new(Bytes::from(super::render(shared))));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    resp
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
