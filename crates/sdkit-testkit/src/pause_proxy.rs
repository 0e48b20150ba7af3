//! A TCP proxy on a free loopback port that can cut a client off from its server: while
//! paused, every connection through it is closed and new ones are closed at once, so the
//! server stops hearing from the client (a paused or partitioned client) while both keep
//! running.
//!
//! ```no_run
//! use sdkit_testkit::pause_proxy::PausableProxy;
//!
//! # async fn demo(upstream: std::net::SocketAddr) -> std::io::Result<()> {
//! let proxy = PausableProxy::start(upstream).await?;
//! let addr = proxy.addr(); // give this to the client instead of `upstream`
//! proxy.pause();           // the client is cut off
//! proxy.resume();          // and reaches the server again
//! # drop(addr);
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A pausable TCP proxy. See the [module docs](self). Dropping it stops it.
#[derive(Debug)]
pub struct PausableProxy {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PausableProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> io::Result<PausableProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (paused, _) = watch::channel(false);
        let flag = paused.clone();
        let task = tokio::spawn(async move {
            let mut pumps = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *flag.borrow() {
                    drop(client);
                    continue;
                }
                let mut cut = flag.subscribe();
                pumps.spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|paused| *paused) => {}
                    }
                });
                // Reap finished pumps so the set does not grow.
                while pumps.try_join_next().is_some() {}
            }
        });
        Ok(PausableProxy { addr, paused, task })
    }

    /// The proxy's address (give it to the client instead of the server's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the client off: closes every connection and refuses new ones until
    /// [`resume`](Self::resume).
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Forwards again.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

impl Drop for PausableProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops the JoinSet, which aborts every pump.
        self.task.abort();
    }
}
