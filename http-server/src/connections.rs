//! Accepting and serving connections: hyper's HTTP/1.1 server on each, as
//! `axum::serve` runs it, with two bounds that it does not set. Without them, clients
//! that opened connections and sent their request heads a line at a time held a file
//! descriptor each for as long as they liked: with 20,000 of them (the process's limit
//! on the machine measured) the OMS answered no one, its accepts failing with EMFILE,
//! and its own connections to the database and the broker could not have been opened
//! either. Now a request head must arrive whole within the header read timeout of the
//! moment the connection began waiting for it (an idle keep-alive connection is closed
//! then too), and at most so many connections are served at once: the next waits in
//! the listen backlog until one ends, which leaves descriptors for the service's own
//! clients.

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How many connections are served at once, and how long a request head may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; the next waits until one ends.
    pub max_connections: usize,
    /// Longest a connection may wait for a whole request head, from its start or from
    /// its previous response; it is closed then.
    pub header_read_timeout: Duration,
}

impl ConnectionLimits {
    /// Connections served at once unless configured otherwise.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
    /// How long a request head may take unless configured otherwise, in milliseconds:
    /// also how long an idle keep-alive connection is kept, so above the idle timeouts
    /// of common load balancers (60 s), which must close a connection before the
    /// server does.
    pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 75_000;
}

impl Default for ConnectionLimits {
    /// What the services run with unless configured otherwise (`HttpSettings`).
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS as usize,
            header_read_timeout: Duration::from_millis(Self::DEFAULT_HEADER_READ_TIMEOUT_MS),
        }
    }
}

/// Serves `app` on every connection `listener` accepts, within `limits`, until
/// `shutdown` completes; then stops accepting, lets each connection finish the
/// request it serves (idle ones close at once) and returns when all have.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    wait_after_accept_error(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A client gone, a head too slow or malformed: nothing to act on.
                tracing::debug!(%error, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection that failed while being accepted concerns its client alone: go on.
/// Anything else (out of file descriptors, say) would fail again at once: log it and
/// wait a second, as `axum::serve` does.
async fn wait_after_accept_error(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        tracing::error!(%error, "cannot accept a connection; trying again in a second");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
