//! A TCP proxy for tests that need a network fault between a process and a server:
//! it forwards every connection to a target, and can blackhole the traffic (a network
//! partition: nothing passes either way, yet no socket closes, so neither end learns
//! anything) or cut every connection.
//!
//! Only tokio, so that any crate's tests can include this file (`eventstore` does, by
//! `#[path]`: it cannot depend on this crate, which depends on it through the services).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic, shared by every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Mode {
    /// Nothing is read, written or connected while set.
    blackholed: bool,
    /// How many times every connection was cut: a connection made under an earlier
    /// count is closed.
    cuts: u64,
    /// The proxy was dropped: everything closes and nothing more is accepted.
    dropped: bool,
}

/// Forwards the connections made to [`TcpProxy::address`] to a target, until dropped.
#[derive(Debug)]
pub struct TcpProxy {
    address: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl TcpProxy {
    /// A proxy to `target`, listening on a free port of 127.0.0.1.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), target).await
    }

    /// A proxy to `target` listening on `address`: a port chosen beforehand, for a
    /// server that must tell its clients where the proxy is (a broker advertising it).
    pub async fn start_on(address: SocketAddr, target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let (mode, watching) = watch::channel(Mode::default());
        tokio::spawn(accept(listener, target, watching));
        Ok(Self { address, mode })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The port clients connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Stops (`true`) or resumes (`false`) all traffic, both ways, on every connection
    /// and for new ones, closing nothing: bytes sent meanwhile wait in the sockets'
    /// buffers (as TCP would retransmit them after a partition) and pass on resuming.
    /// A connection made while blackholed is accepted but reaches the target only on
    /// resuming, as a SYN retransmitted after a partition would.
    pub fn blackhole(&self, blackholed: bool) {
        self.mode.send_modify(|mode| mode.blackholed = blackholed);
    }

    /// Closes every connection, both ends; new connections are forwarded as before.
    pub fn cut(&self) {
        self.mode.send_modify(|mode| mode.cuts += 1);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.mode.send_modify(|mode| mode.dropped = true);
    }
}

/// Accepts connections until the proxy is dropped, each forwarded by a task of its own.
async fn accept(listener: TcpListener, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(forward(client, target, mode.clone()));
                }
            }
            changed = mode.changed() => if changed.is_err() || mode.borrow().dropped {
                return;
            }
        }
    }
}

/// Forwards one connection both ways until either end closes, it is cut, or the proxy
/// is dropped.
async fn forward(client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let cuts = mode.borrow().cuts;
    if !passing(&mut mode, cuts).await {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_reads, client_writes) = client.into_split();
    let (server_reads, server_writes) = server.into_split();
    // Both directions end together when cut; each ends alone on its end-of-stream,
    // which it passes on (a half-close), as TCP does.
    tokio::join!(pump(client_reads, server_writes, mode.clone(), cuts), pump(server_reads, client_writes, mode, cuts));
}

/// Waits until traffic passes: true, or false when the connection made under `cuts`
/// must close instead.
async fn passing(mode: &mut watch::Receiver<Mode>, cuts: u64) -> bool {
    loop {
        let now = *mode.borrow_and_update();
        if now.dropped || now.cuts != cuts {
            return false;
        }
        if !now.blackholed {
            return true;
        }
        if mode.changed().await.is_err() {
            return false;
        }
    }
}

/// Copies `from` to `to`, reading and writing only while traffic passes.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>, cuts: u64) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        // Read only while passing: a blackholed connection leaves the bytes in the
        // kernel's buffers, where the sender cannot tell them from bytes in flight.
        let read = loop {
            if !passing(&mut mode, cuts).await {
                return;
            }
            tokio::select! {
                read = from.read(&mut buffer) => break read,
                _ = mode.changed() => {}
            }
        };
        let length = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(length) => length,
        };
        let mut written = 0;
        while written < length {
            if !passing(&mut mode, cuts).await {
                return;
            }
            tokio::select! {
                wrote = to.write(&buffer[written..length]) => match wrote {
                    Ok(0) | Err(_) => return,
                    Ok(count) => written += count,
                },
                _ = mode.changed() => {}
            }
        }
    }
}
