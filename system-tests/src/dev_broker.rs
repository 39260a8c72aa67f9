//! A private development broker (tansu, in-memory) for a test that must pause or stop
//! its broker without disturbing the tests sharing the suite's broker.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::processes::free_port;

/// The tansu binary: `DEV_BROKER_BIN` (set by `scripts/test`), else where the scripts
/// install it.
fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("DEV_BROKER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let path = PathBuf::from(home).join(".cache/order-processing/tansu-0.6.0/bin/tansu");
    if !path.exists() {
        bail!("no development broker binary at {}: run the tests with scripts/test, which installs it, or set DEV_BROKER_BIN", path.display());
    }
    Ok(path)
}

/// A tansu broker on a port of its own; killed when dropped.
pub struct DevBroker {
    child: Child,
    /// Its bootstrap address, `127.0.0.1:<port>`.
    pub address: String,
}

impl DevBroker {
    /// Starts one and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let url = format!("tcp://{address}");
        let child = Command::new(binary()?)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the development broker")?;
        let mut broker = Self { child, address };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&broker.address).await.is_err() {
            if let Some(status) = broker.child.try_wait()? {
                bail!("the development broker exited at start-up with {status}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the development broker did not listen on {} within 10 s", broker.address);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(broker)
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
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
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
