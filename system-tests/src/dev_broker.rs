//! A private development broker (crabka-broker, as `scripts/lib/kafka.sh` builds and
//! patches it) for a test that must pause, kill or restart its broker without
//! disturbing the tests sharing the suite's broker. Each has a log directory and
//! ports of its own; it keeps what it was sent across [`DevBroker::restart`], as the
//! development broker does, and forgets it on [`DevBroker::start_empty`].
//!
//! Needs nothing else of this crate: `messaging`'s robustness tests include this file
//! as source (this crate depends on `messaging`, so they cannot depend on it).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The crabka-broker binary: `CRABKA_BIN`, which `scripts/test` sets to the patched
/// build of `scripts/lib/kafka.sh`.
fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("CRABKA_BIN").map(PathBuf::from).context(
        "CRABKA_BIN is not set: run the tests with scripts/test, or set it to the broker scripts/lib/kafka.sh builds \
         (bash -c 'source scripts/lib/kafka.sh && install_crabka && echo $CRABKA_ROOT/bin/crabka-broker')",
    )?;
    if !path.is_file() {
        bail!("CRABKA_BIN names {}, which is not a file", path.display());
    }
    Ok(path)
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A crabka-broker with a log directory of its own; stopped and its directory
/// removed when dropped (kept, with its log, when the test fails).
pub struct DevBroker {
    /// None once killed or stopped.
    child: Option<Child>,
    /// Holds `data/` (its log directory) and `broker.log` (its own log, warnings up).
    dir: PathBuf,
    /// Its bootstrap address, `127.0.0.1:<port>`.
    pub address: String,
    /// Its KRaft controller's listener, a port of its own too.
    controller: String,
    /// Its listeners' configuration file, when it has more than plaintext on `address`.
    config: Option<String>,
    /// The address it tells clients to connect to, when not its own (a proxy's).
    advertised: Option<String>,
    /// Variables its process is started with.
    env: Vec<(String, String)>,
}

impl DevBroker {
    /// Starts one that speaks plaintext on its address and waits until it accepts
    /// connections.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_configured(|_, _| None, Vec::new()).await
    }

    /// Starts one that speaks plaintext on its address but tells clients (in
    /// `Metadata`) to connect to `advertised`, a proxy in front of it: every connection
    /// after a client's first then goes through the proxy, as through a network that
    /// can fail.
    pub async fn start_advertising(advertised: &str) -> anyhow::Result<Self> {
        Self::start_with(|_, _| None, Vec::new(), Some(advertised.to_owned())).await
    }

    /// Starts one whose listeners are described by the configuration file `config`
    /// writes for its log directory and address (plaintext on the address when it
    /// writes none), its process started with `env`; waits until it accepts
    /// connections.
    pub async fn start_configured(
        config: impl Fn(&Path, &str) -> Option<String>,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        Self::start_with(config, env, None).await
    }

    async fn start_with(
        config: impl Fn(&Path, &str) -> Option<String>,
        env: Vec<(String, String)>,
        advertised: Option<String>,
    ) -> anyhow::Result<Self> {
        let binary = binary()?;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("dev-broker-{}", &run[..12]));
        // A port free a moment ago may be taken by the time the broker binds it: then
        // it exits, and another pair is tried.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let _ = std::fs::remove_dir_all(&dir);
            format_log_dir(&dir.join("data"))?;
            let address = format!("127.0.0.1:{}", free_port()?);
            let controller = format!("127.0.0.1:{}", free_port()?);
            let config = config(&dir.join("data"), &address);
            let mut broker = Self {
                child: None,
                dir: dir.clone(),
                address,
                controller,
                config,
                advertised: advertised.clone(),
                env: env.clone(),
            };
            match broker.launch(&binary).await {
                Ok(()) => return Ok(broker),
                Err(error) if attempts >= 3 => return Err(error),
                Err(_) => {}
            }
        }
    }

    /// Starts its process on its directory and addresses and waits until it listens.
    async fn launch(&mut self, binary: &Path) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        let log = OpenOptions::new().create(true).append(true).open(self.log()).context("opening the broker's log")?;
        let mut command = Command::new(binary);
        match &self.config {
            // `--listen-addr` cannot be given beside `--config-file`, which names them.
            Some(config) => {
                let file = self.dir.join("broker.toml");
                std::fs::write(&file, config).context("writing the broker's configuration")?;
                command.arg("--config-file").arg(file);
            }
            None => {
                command.args(["--listen-addr", &self.address]);
                if let Some(advertised) = &self.advertised {
                    command.args(["--advertised-listener", advertised]);
                }
            }
        }
        let cluster_id = cluster_id(&data)?;
        let child = command
            .args(["--controller-listen-addr", &self.controller, "--log-dir"])
            .arg(&data)
            .args(["--cluster-id", &cluster_id, "--metrics-listen-addr", "none"])
            // As scripts/lib/kafka.sh starts it: a new group waits 250 ms for members.
            .args(["--group-initial-rebalance-delay-ms", "250"])
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let child = await_listening(child, &self.address, "the development broker").await.map_err(|error| {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            anyhow::anyhow!("{error:#}; its log ends:\n{}", lines[lines.len().saturating_sub(10)..].join("\n"))
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Its own log (warnings and errors).
    pub fn log(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let Some(child) = &self.child else { bail!("the development broker is not running") };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("a process id")?);
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

    /// Kills it (SIGKILL), as a crashed broker: connections are refused until it is
    /// started again.
    pub fn kill(&mut self) {
        let _ = self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it as an operator does (SIGINT, on which it shuts down cleanly; killed
    /// if it has not exited within 10 s).
    pub fn stop(&mut self) {
        self.stop_within(Duration::from_secs(10));
    }

    fn stop_within(&mut self, grace: Duration) {
        let _ = self.resume();
        let _ = self.signal(Signal::SIGINT);
        if let Some(mut child) = self.child.take() {
            let deadline = std::time::Instant::now() + grace;
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it cleanly and starts it again on the same log directory and address:
    /// topics, messages, committed offsets and groups are kept.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.start_again().await
    }

    /// Starts a new, empty broker on the same address (after [`DevBroker::kill`], or
    /// killing this one first): topics, offsets, groups and messages are forgotten, as
    /// when the development broker loses its log directory.
    pub async fn start_empty(&mut self) -> anyhow::Result<()> {
        self.kill();
        let data = self.dir.join("data");
        std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
        format_log_dir(&data)?;
        self.start_again().await
    }

    /// Starts it again after [`DevBroker::kill`] on the same log directory and
    /// address, as a supervisor restarts a crashed broker: it recovers what its log
    /// segments hold. The port may linger a moment after a stop, so it tries for up
    /// to 10 s.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let binary = binary()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch(&binary).await {
                Ok(()) => return Ok(()),
                Err(error) if tokio::time::Instant::now() > deadline => {
                    return Err(error.context(format!("restarting the broker on {}", self.address)));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// Makes `data` a new log directory: what `crabka format` would write, which the
/// broker refuses to start without (it reads only the directory id).
fn format_log_dir(data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let meta = format!(
        r#"{{"cluster_id": "{}", "directory_id": "{}", "version": 1}}"#,
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4()
    );
    std::fs::write(data.join("meta.properties.json"), meta).context("writing meta.properties.json")?;
    Ok(())
}

/// The cluster id [`format_log_dir`] wrote into `data`.
fn cluster_id(data: &Path) -> anyhow::Result<String> {
    let meta = std::fs::read_to_string(data.join("meta.properties.json")).context("reading meta.properties.json")?;
    let id = meta.split('"').nth(3).context("a cluster id in meta.properties.json")?;
    Ok(id.to_owned())
}

/// Waits up to 10 s until `child`, a broker called `name` in errors, accepts
/// connections on `address`; kills it if it never does.
async fn await_listening(mut child: Child, address: &str, name: &str) -> anyhow::Result<Child> {
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
        // Nothing of it is kept, so a short grace is enough.
        self.stop_within(Duration::from_secs(2));
        if std::thread::panicking() {
            eprintln!("the development broker's log and data are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
