//! A private broker that only speaks TLS (crabka-broker, patched by
//! `scripts/lib/crabka`), for the tests of the services' Kafka security settings:
//! SASL/SCRAM over TLS, client certificates, a server certificate that has expired.
//!
//! The broker and the development certificates come from the environment that
//! `scripts/test` sets up (`CRABKA_BIN`, `DEV_TLS_*` of `scripts/lib/tls.sh`); a test
//! without them fails, naming them, rather than skipping.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::processes::free_port;

/// How to get the variables this module needs.
const HOW: &str = "run the tests with scripts/test, or export them with \
     eval \"$(bash -c 'source scripts/lib/kafka.sh; install_crabka >/dev/null; ensure_dev_tls >/dev/null; \
     echo export CRABKA_BIN=$CRABKA_ROOT/bin/crabka-broker; env | grep ^DEV_TLS_ | sed \"s/^/export /\"')\"";

/// A file named by environment variable `name`, which must exist.
fn file_from_env(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(name).map(PathBuf::from).with_context(|| format!("{name} is not set: {HOW}"))?;
    if !path.is_file() {
        bail!("{name} names {}, which is not a file: {HOW}", path.display());
    }
    Ok(path)
}

/// The development CA and the certificates it signed (`scripts/lib/tls.sh`).
#[derive(Clone)]
pub struct DevTls {
    /// The CA certificate (`DEV_TLS_CA`).
    pub ca: PathBuf,
    /// The broker's certificate, for 127.0.0.1 and localhost (`DEV_TLS_BROKER_CERT`).
    pub broker_cert: PathBuf,
    /// Its key (`DEV_TLS_BROKER_KEY`).
    pub broker_key: PathBuf,
    /// A client certificate (`DEV_TLS_CLIENT_CERT`).
    pub client_cert: PathBuf,
    /// Its key, encrypted (`DEV_TLS_CLIENT_KEY`).
    pub client_key: PathBuf,
    /// The client key's password, read from `DEV_TLS_CLIENT_KEY_PASSWORD_FILE`.
    pub client_key_password: String,
    /// A broker certificate that expired in 2020 (`DEV_TLS_EXPIRED_CERT`).
    pub expired_cert: PathBuf,
    /// Its key (`DEV_TLS_EXPIRED_KEY`).
    pub expired_key: PathBuf,
}

impl fmt::Debug for DevTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevTls")
            .field("ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("client_key_password", &"***")
            .finish_non_exhaustive()
    }
}

impl DevTls {
    /// The files `DEV_TLS_*` name; fails naming the first one missing.
    pub fn from_env() -> anyhow::Result<Self> {
        let password_file = file_from_env("DEV_TLS_CLIENT_KEY_PASSWORD_FILE")?;
        let client_key_password = std::fs::read_to_string(&password_file)
            .with_context(|| format!("reading the client key's password from {}", password_file.display()))?;
        Ok(Self {
            ca: file_from_env("DEV_TLS_CA")?,
            broker_cert: file_from_env("DEV_TLS_BROKER_CERT")?,
            broker_key: file_from_env("DEV_TLS_BROKER_KEY")?,
            client_cert: file_from_env("DEV_TLS_CLIENT_CERT")?,
            client_key: file_from_env("DEV_TLS_CLIENT_KEY")?,
            client_key_password: client_key_password.trim_end_matches('\n').to_owned(),
            expired_cert: file_from_env("DEV_TLS_EXPIRED_CERT")?,
            expired_key: file_from_env("DEV_TLS_EXPIRED_KEY")?,
        })
    }
}

/// What the broker's one listener asks of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listener {
    /// TLS with the development broker certificate, then SASL/SCRAM-SHA-512 (Kafka's
    /// `SASL_SSL`), as `KAFKA_DEV_SECURITY=sasl_ssl` and production.
    #[default]
    SaslSsl,
    /// TLS that requires a client certificate signed by the development CA, which is
    /// then the only credential (Kafka's `SSL` with `ssl.client.auth=required`).
    ClientCertificate,
    /// [`Listener::SaslSsl`] presenting a certificate that expired in 2020.
    ExpiredCertificate,
}

/// A crabka-broker with one TLS listener on a port of its own, in a fresh log
/// directory; stopped (SIGINT, then SIGKILL) and its directory removed when dropped.
pub struct SecureBroker {
    child: Child,
    dir: PathBuf,
    /// What its listener asks of a client.
    pub listener: Listener,
    /// Its bootstrap address, `127.0.0.1:<port>`.
    pub address: String,
    /// The SCRAM user it was started with (for [`Listener::SaslSsl`] and
    /// [`Listener::ExpiredCertificate`]).
    pub username: String,
    /// That user's password.
    pub password: String,
    /// The certificates in use.
    pub tls: DevTls,
}

impl fmt::Debug for SecureBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureBroker")
            .field("listener", &self.listener)
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"***")
            .finish_non_exhaustive()
    }
}

impl SecureBroker {
    /// Starts one whose listener asks what `listener` says, and waits until it
    /// accepts connections.
    pub async fn start(listener: Listener) -> anyhow::Result<Self> {
        let binary = file_from_env("CRABKA_BIN")?;
        let tls = DevTls::from_env()?;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("secure-broker-{}", &run[..10]));
        let (username, password) = ("order-processing".to_owned(), format!("pw-{}", &run[10..]));
        // A port free a moment ago may be taken by the time the broker binds it: then
        // it exits, and another pair is tried.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let _ = std::fs::remove_dir_all(&dir);
            let ports = (free_port()?, free_port()?);
            let address = format!("127.0.0.1:{}", ports.0);
            let controller = format!("127.0.0.1:{}", ports.1);
            let spawned =
                spawn(&binary, &dir, listener, &tls, &address, &controller, &format!("{username}:{password}"))?;
            match await_listening(spawned, &address, &dir).await {
                Ok(child) => {
                    return Ok(Self { child, dir, listener, address, username, password, tls });
                }
                Err(error) if attempts >= 3 => {
                    return Err(error.context(format!("starting crabka-broker ({})", binary.display())));
                }
                Err(_) => {}
            }
        }
    }

    /// The services' settings (environment variables) to reach it as they should:
    /// TLS trusting the development CA, and the SCRAM user or the client certificate.
    pub fn service_env(&self) -> Vec<(String, String)> {
        let ca = self.tls.ca.display().to_string();
        let mut env = vec![("KAFKA_SSL_CA_LOCATION", ca)];
        match self.listener {
            Listener::SaslSsl | Listener::ExpiredCertificate => env.extend([
                ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl".to_owned()),
                ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".to_owned()),
                ("KAFKA_SASL_USERNAME", self.username.clone()),
                ("KAFKA_SASL_PASSWORD", self.password.clone()),
            ]),
            Listener::ClientCertificate => env.extend([
                ("KAFKA_SECURITY_PROTOCOL", "ssl".to_owned()),
                ("KAFKA_SSL_CERTIFICATE_LOCATION", self.tls.client_cert.display().to_string()),
                ("KAFKA_SSL_KEY_LOCATION", self.tls.client_key.display().to_string()),
                ("KAFKA_SSL_KEY_PASSWORD", self.tls.client_key_password.clone()),
            ]),
        }
        env.into_iter().map(|(name, value)| (name.to_owned(), value)).collect()
    }

    /// A librdkafka configuration that reaches it as [`SecureBroker::service_env`]
    /// configures the services.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.address);
        for (name, value) in self.service_env() {
            let property = name.trim_start_matches("KAFKA_").to_lowercase().replace('_', ".");
            config.set(property, value);
        }
        config
    }

    /// Its own log (warnings and errors).
    pub fn log(&self) -> PathBuf {
        self.dir.join("broker.log")
    }
}

/// Writes a fresh log directory and configuration into `dir` and starts the broker
/// there, listening on `address` as `listener` says, seeded with SCRAM user `user`
/// (`name:password`).
fn spawn(
    binary: &Path,
    dir: &Path,
    listener: Listener,
    tls: &DevTls,
    address: &str,
    controller: &str,
    user: &str,
) -> anyhow::Result<Child> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let cluster_id = uuid::Uuid::new_v4();
    // What `crabka format` would write; the broker refuses a directory without it.
    let meta = serde_json::json!({"cluster_id": cluster_id, "directory_id": uuid::Uuid::new_v4(), "version": 1});
    std::fs::write(data.join("meta.properties.json"), meta.to_string()).context("writing meta.properties.json")?;
    let config = dir.join("broker.toml");
    std::fs::write(&config, config_file(listener, tls, &data, address))
        .context("writing the broker's configuration")?;
    let log = File::create(dir.join("broker.log")).context("creating the broker's log")?;
    // One listener only: with a plaintext one beside it, Metadata would advertise the
    // inter-broker listener's address to every client. `--listen-addr` cannot be given
    // beside `--config-file`.
    Command::new(binary)
        .arg("--config-file")
        .arg(&config)
        .args(["--controller-listen-addr", controller, "--log-dir"])
        .arg(&data)
        .args(["--cluster-id", &cluster_id.to_string(), "--metrics-listen-addr", "none"])
        .args(["--group-initial-rebalance-delay-ms", "250"])
        // Seeds SCRAM-SHA-256 and -512 credentials into the new directory; in the
        // environment, not on the command line, where any process could read it.
        .env("CRABKA_ADD_SCRAM", user)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// The TOML configuration of the one listener `listener` on `address`.
fn config_file(listener: Listener, tls: &DevTls, data: &Path, address: &str) -> String {
    let quoted = |path: &Path| toml_string(&path.display().to_string());
    // The expired listener presents the expired certificate; only the
    // client-certificate one asks clients for theirs.
    let (cert, key) = match listener {
        Listener::ExpiredCertificate => (&tls.expired_cert, &tls.expired_key),
        Listener::SaslSsl | Listener::ClientCertificate => (&tls.broker_cert, &tls.broker_key),
    };
    let client_auth = match listener {
        Listener::ClientCertificate => format!("client_ca_path = {}, client_auth = \"Required\"", quoted(&tls.ca)),
        Listener::SaslSsl | Listener::ExpiredCertificate => "client_auth = \"Disabled\"".to_owned(),
    };
    let tls_config = format!("{{ cert_path = {}, key_path = {}, {client_auth} }}", quoted(cert), quoted(key));
    let (protocol, sasl) = match listener {
        Listener::SaslSsl | Listener::ExpiredCertificate => {
            ("SaslSsl", "sasl_config = { enabled_mechanisms = [\"SCRAM-SHA-512\"] }\n")
        }
        Listener::ClientCertificate => ("Ssl", ""),
    };
    let address = toml_string(address);
    format!(
        "broker_id = 1\nlog_dir = {}\ninter_broker_listener_name = \"secure\"\n\n[[listeners]]\nname = \"secure\"\n\
         bind_addr = {address}\nadvertised = {address}\nprotocol = \"{protocol}\"\ntls_config = {tls_config}\n{sasl}",
        quoted(data)
    )
}

/// `value` as a TOML basic string (JSON's escapes are valid TOML ones).
fn toml_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

/// [`crate::dev_broker::await_listening`], with the tail of the broker's log in `dir`
/// in the error.
async fn await_listening(child: Child, address: &str, dir: &Path) -> anyhow::Result<Child> {
    crate::dev_broker::await_listening(child, address, "crabka-broker").await.map_err(|error| {
        let log = std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        anyhow::anyhow!("{error:#}:\n{}", lines[lines.len().saturating_sub(10)..].join("\n"))
    })
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        // It shuts down cleanly on SIGINT only; nothing of it is kept, so a short
        // grace is enough.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("the secure broker's log and data are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
