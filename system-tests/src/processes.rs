//! Both services as child processes of the test (the real `oms` and `inventory`
//! binaries), so a test can stop one (SIGTERM), kill it (SIGKILL), start it again on
//! the same port, or start more instances of it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use messaging::KafkaSettings;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::PgPool;

use crate::Api;
use crate::system::{Deployment, Service, brokers, schema_pools};

impl Service {
    /// The binary's name.
    pub fn binary_name(self) -> &'static str {
        match self {
            Service::Oms => "oms",
            Service::Inventory => "inventory",
        }
    }
}

/// The directory holding the service binaries of the profile this test was built
/// with, after `cargo build` made sure they are current (once per test process).
pub fn binaries_dir() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build_binaries().map_err(|error| format!("{error:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build_binaries() -> anyhow::Result<PathBuf> {
    // A test binary lives in <target-dir>/<profile>/deps/.
    let exe = std::env::current_exe().context("locating the test binary")?;
    let profile_dir =
        exe.parent().and_then(Path::parent).context("the test binary is not in <target>/<profile>/deps")?.to_path_buf();
    let target_dir = profile_dir.parent().context("no target directory")?;
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("no workspace directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "--bin", "oms", "--bin", "inventory", "--target-dir"])
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let status = command.status().context("running cargo build for the service binaries")?;
    if !status.success() {
        bail!("cargo build --bin oms --bin inventory failed: {status}");
    }
    for service in [Service::Oms, Service::Inventory] {
        let binary = profile_dir.join(service.binary_name());
        if !binary.is_file() {
            bail!("{} missing after the build", binary.display());
        }
    }
    Ok(profile_dir)
}

// A port that was free a moment ago, for a service that must come back on the same
// port after a restart.
pub use crate::dev_broker::free_port;

/// One service binary running as a child process; killed when dropped.
pub struct ServiceProcess {
    service: Service,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    /// The base URL, e.g. `http://127.0.0.1:40123`; the same across restarts.
    pub base_url: String,
    child: Option<Child>,
    starts: u32,
}

impl ServiceProcess {
    /// A process of `service` with `args` and extra environment `env`, listening on
    /// `port` (one of `args`), logging to `log`; not started yet.
    pub fn new(
        service: Service,
        args: Vec<String>,
        env: Vec<(String, String)>,
        port: u16,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let binary = binaries_dir()?.join(service.binary_name());
        Ok(Self {
            service,
            binary,
            args,
            env,
            log,
            base_url: format!("http://127.0.0.1:{port}"),
            child: None,
            starts: 0,
        })
    }

    /// The binary's name (`oms`, `inventory`).
    pub fn binary_name(&self) -> &'static str {
        self.service.binary_name()
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process (again).
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.service.binary_name());
        }
        self.starts += 1;
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log).context("opening the log file")?;
        writeln!(log, "===== start #{} of {} =====", self.starts, self.service.binary_name())?;
        let stderr: File = log.try_clone()?;
        let mut command = Command::new(&self.binary);
        command.args(&self.args).env("LOG_FORMAT", "text").envs(self.env.iter().cloned());
        // LOG_LEVEL (and KAFKA_CONSUMER_DEBUG=cgrp, say) pass through for debugging.
        if std::env::var_os("LOG_LEVEL").is_none() {
            command.env("LOG_LEVEL", "info,sqlx=warn");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Asks the process to stop (SIGTERM) and waits until it exits; returns how it
    /// exited and how long after the signal. Fails, killing it, if it is still
    /// running after `timeout`.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
        let name = self.service.binary_name();
        let Some(mut child) = self.child.take() else { bail!("{name} is not running") };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("a process id")?);
        kill(pid, Signal::SIGTERM).with_context(|| format!("sending SIGTERM to {name}"))?;
        let asked = tokio::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().with_context(|| format!("waiting for {name}"))? {
                return Ok((status, asked.elapsed()));
            }
            if asked.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{name} still running {timeout:?} after SIGTERM; see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its `/metrics` text.
    pub async fn metrics(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        let url = format!("{}/metrics", self.base_url);
        let response =
            http.get(&url).timeout(Duration::from_secs(5)).send().await.with_context(|| format!("GET {url}"))?;
        response.error_for_status()?.text().await.context("reading /metrics")
    }

    /// Kills the process with SIGKILL (no graceful shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP), as a service that hangs: its connections stay
    /// open and nothing is answered or consumed until [`ServiceProcess::resume`].
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGCONT)
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let name = self.service.binary_name();
        let Some(child) = &self.child else { bail!("{name} is not running") };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("a process id")?);
        kill(pid, signal).with_context(|| format!("sending {signal} to {name}"))
    }

    /// Whether the process is running (it did not exit by itself).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Its readiness answer: the status and the body's text.
    pub async fn readiness(&self, http: &reqwest::Client) -> anyhow::Result<(u16, String)> {
        let url = format!("{}/health/ready", self.base_url);
        // As long as the deployment's probe waits (deploy/k8s: `timeoutSeconds: 3`): a
        // check of a hung dependency takes its whole two seconds to count as down.
        let response =
            http.get(&url).timeout(Duration::from_secs(3)).send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.context("reading the readiness answer")?))
    }

    /// Waits until `/health/ready` answers 200, failing if the process exits or
    /// `timeout` passes.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, timeout: Duration) -> anyhow::Result<()> {
        self.wait_readiness(http, timeout, "ready", |status, _| status == 200).await.map(|_| ())
    }

    /// Polls `/health/ready` until its status and body satisfy `holds`; returns how
    /// long that took. Fails, naming `what`, if the process exits or `timeout` passes.
    pub async fn wait_readiness(
        &mut self,
        http: &reqwest::Client,
        timeout: Duration,
        what: &str,
        holds: impl Fn(u16, &str) -> bool,
    ) -> anyhow::Result<Duration> {
        let started = tokio::time::Instant::now();
        loop {
            if !self.is_running() {
                bail!("{} exited; see {}", self.service.binary_name(), self.log.display());
            }
            if let Ok((status, body)) = self.readiness(http).await
                && holds(status, &body)
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bail!("{} not {what} after {timeout:?}; see {}", self.service.binary_name(), self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to start a [`ProcessSystem`] beyond the defaults.
#[derive(Debug, Clone)]
pub struct ProcessOptions<'a> {
    /// Partitions of the topics.
    pub partitions: i32,
    /// Extra environment of every instance.
    pub env: &'a [(&'a str, &'a str)],
    /// Bootstrap brokers; the suite's broker when none (e.g. a private `DevBroker`).
    pub brokers: Option<String>,
    /// The database both use; a fresh database on the test server when none (e.g. one
    /// on a private `PgCluster`).
    pub database_url: Option<String>,
}

impl Default for ProcessOptions<'_> {
    fn default() -> Self {
        Self { partitions: 3, env: &[], brokers: None, database_url: None }
    }
}

/// Both services as processes, against one fresh database and topics and consumer
/// groups of their own.
pub struct ProcessSystem {
    /// Clients of both APIs (stable across restarts: the ports are fixed).
    pub api: Api,
    /// The database URL both use.
    pub database_url: String,
    /// The services' Kafka settings (topic names included).
    pub kafka: KafkaSettings,
    /// The OMS process.
    pub oms: ServiceProcess,
    /// The inventory process.
    pub inventory: ServiceProcess,
    /// The OMS schema.
    pub oms_pool: PgPool,
    /// The inventory schema.
    pub inventory_pool: PgPool,
    /// Where the processes log.
    pub log_dir: PathBuf,
    /// The OMS instances' consumer group.
    pub oms_group: String,
    /// The inventory instances' consumer group.
    pub inventory_group: String,
    /// Flags every instance gets (database, broker, topics, host).
    flags: Vec<String>,
    /// Extra environment every instance gets.
    env: Vec<(String, String)>,
    /// Instances started so far, for log file names.
    instances: u32,
}

impl ProcessSystem {
    /// Builds the binaries if needed, starts both services with the extra environment
    /// `env` (e.g. `KAFKA_CONSUMER_SESSION_TIMEOUT_MS`) and waits until both are ready.
    pub async fn start(partitions: i32, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_with(ProcessOptions { partitions, env, ..ProcessOptions::default() }).await
    }

    /// [`ProcessSystem::start`] with a broker and database of the caller's choice.
    pub async fn start_with(options: ProcessOptions<'_>) -> anyhow::Result<Self> {
        let ProcessOptions { partitions, env, brokers: chosen_brokers, database_url } = options;
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        tokio::task::spawn_blocking(binaries_dir).await.context("building the binaries")??;
        let database_url = match database_url {
            Some(url) => url,
            None => migrations::testing::create_database().await?,
        };
        let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let flags: Vec<String> = vec![
            format!("--database-url={database_url}"),
            format!("--kafka-brokers={}", chosen_brokers.unwrap_or_else(brokers)),
            format!("--kafka-partitions={partitions}"),
            format!("--topic-order-events=t{run}.oms.order-events"),
            format!("--topic-order-outcomes=t{run}.inventory.order-outcomes"),
            format!("--topic-stock-alerts=t{run}.inventory.stock-alerts"),
            "--host=127.0.0.1".to_owned(),
        ];
        let kafka = crate::broker::kafka_settings(&flags)?;
        let log_dir = std::env::temp_dir().join(format!("order-processing-e2e-{run}"));
        std::fs::create_dir_all(&log_dir).context("creating the log directory")?;
        let (oms_group, inventory_group) = (format!("oms-g{run}"), format!("inventory-g{run}"));
        let (oms_port, inventory_port) = (free_port()?, free_port()?);
        let mut oms = ServiceProcess::new(
            Service::Oms,
            instance_args(&flags, oms_port, &oms_group),
            env.clone(),
            oms_port,
            log_dir.join("oms.log"),
        )?;
        let mut inventory = ServiceProcess::new(
            Service::Inventory,
            instance_args(&flags, inventory_port, &inventory_group),
            env.clone(),
            inventory_port,
            log_dir.join("inventory.log"),
        )?;
        let api = Api::new(oms.base_url.clone(), inventory.base_url.clone());
        oms.start()?;
        inventory.start()?;
        oms.wait_ready(&api.http, Duration::from_secs(60)).await?;
        inventory.wait_ready(&api.http, Duration::from_secs(60)).await?;
        let (oms_pool, inventory_pool) = schema_pools(&database_url).await?;
        Ok(Self {
            api,
            database_url,
            kafka,
            oms,
            inventory,
            oms_pool,
            inventory_pool,
            log_dir,
            oms_group,
            inventory_group,
            flags,
            env,
            instances: 2,
        })
    }

    /// Waits until both services answer ready, each within `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.oms.wait_ready(&self.api.http, timeout).await.context("the OMS")?;
        self.inventory.wait_ready(&self.api.http, timeout).await.context("the inventory service")
    }

    /// Starts one more instance of `service` on a port of its own, against the same
    /// database and topics, in the same consumer group as the first; does not wait
    /// until it is ready.
    pub fn start_instance(&mut self, service: Service) -> anyhow::Result<ServiceProcess> {
        self.start_instance_with(service, self.flags.clone())
    }

    /// [`ProcessSystem::start_instance`] reaching the database at `database_url`
    /// instead: the same database another way (through a proxy, say).
    pub fn start_instance_reaching(&mut self, service: Service, database_url: &str) -> anyhow::Result<ServiceProcess> {
        let flags: Vec<String> = self
            .flags
            .iter()
            .map(|flag| {
                if flag.starts_with("--database-url=") {
                    format!("--database-url={database_url}")
                } else {
                    flag.clone()
                }
            })
            .collect();
        self.start_instance_with(service, flags)
    }

    /// Starts one more instance of `service` with the shared `flags` (and its own port
    /// and the service's consumer group).
    fn start_instance_with(&mut self, service: Service, flags: Vec<String>) -> anyhow::Result<ServiceProcess> {
        self.instances += 1;
        let port = free_port()?;
        let group = match service {
            Service::Oms => &self.oms_group,
            Service::Inventory => &self.inventory_group,
        };
        let log = self.log_dir.join(format!("{}-{}.log", service.binary_name(), self.instances));
        let mut instance =
            ServiceProcess::new(service, instance_args(&flags, port, group), self.env.clone(), port, log)?;
        instance.start()?;
        Ok(instance)
    }
}

/// The arguments of one instance: the shared `flags`, its port and consumer group.
fn instance_args(flags: &[String], port: u16, group: &str) -> Vec<String> {
    let mut args = flags.to_vec();
    args.push(format!("--port={port}"));
    args.push(format!("--consumer-group={group}"));
    args
}

impl Deployment for ProcessSystem {
    fn parts(&self) -> (&Api, &PgPool, &PgPool) {
        (&self.api, &self.oms_pool, &self.inventory_pool)
    }
}
