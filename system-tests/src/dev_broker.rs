//! A private development broker (tansu, in-memory) for a test that must pause or stop
//! its broker without disturbing the tests sharing the suite's broker.
//!
//! Needs nothing else of this crate: `messaging`'s robustness tests include this file
//! as source (this crate depends on `messaging`, so they cannot depend on it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The tansu binary: `DEV_BROKER_BIN`, which `scripts/test` sets to the patched build
/// of `scripts/lib/kafka.sh`.
fn binary() -> anyhow::Result<PathBuf> {
    std::env::var_os("DEV_BROKER_BIN").map(PathBuf::from).context(
        "DEV_BROKER_BIN is not set: run the tests with scripts/test, or set it to the broker scripts/lib/kafka.sh builds \
         (bash -c 'source scripts/lib/kafka.sh && install_tansu && echo $TANSU_ROOT/bin/tansu')",
    )
}

/// A tansu broker on a port of its own; killed when dropped.
pub struct DevBroker {
    child: Child,
    /// False once killed: its process id may belong to another process by then.
    alive: bool,
    /// Its bootstrap address, `127.0.0.1:<port>`.
    pub address: String,
}

impl DevBroker {
    /// Starts one and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let free = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?.local_addr()?;
        Self::start_on(format!("127.0.0.1:{}", free.port())).await
    }

    /// Starts one on `address` and waits until it accepts connections.
    async fn start_on(address: String) -> anyhow::Result<Self> {
        let child = spawn_listening(&address).await?;
        Ok(Self { child, address, alive: true })
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        if !self.alive {
            bail!("the development broker was killed");
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).context("a process id")?);
        kill(pid, signal).with_context(|| format!("sending {signal} to the development broker"))
    }

    /// Freezes it (SIGSTOP): connections stay open and nothing is answered, as with a
    /// broker that hangs or a network partition.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// Lets it go on (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Kills it (SIGKILL), as a crashed broker: connections are refused until
    /// [`DevBroker::start_empty`]. Everything it held is gone (in-memory storage).
    pub fn kill(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.alive = false;
    }

    /// Starts a new, empty broker on the same address (after [`DevBroker::kill`], or
    /// killing this one first): topics, offsets, groups and messages are forgotten, as
    /// when the development broker restarts.
    pub async fn start_empty(&mut self) -> anyhow::Result<()> {
        self.kill();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match spawn_listening(&self.address).await {
                Ok(child) => {
                    // The old child is reaped; the new one takes its place.
                    self.child = child;
                    self.alive = true;
                    return Ok(());
                }
                // The port may linger a moment after the kill.
                Err(error) if tokio::time::Instant::now() > deadline => {
                    return Err(error.context(format!("restarting the broker on {}", self.address)));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// Starts tansu on `address` with in-memory storage and waits until it accepts
/// connections; kills it if it never does.
async fn spawn_listening(address: &str) -> anyhow::Result<Child> {
    let url = format!("tcp://{address}");
    let child = Command::new(binary()?)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the development broker")?;
    await_listening(child, address, "the development broker").await
}

/// Waits up to 10 s until `child`, a broker called `name` in errors, accepts
/// connections on `address`; kills it if it never does.
pub async fn await_listening(mut child: Child, address: &str, name: &str) -> anyhow::Result<Child> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited at start-up with {status}");
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{name} did not listen on {address} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(child)
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
