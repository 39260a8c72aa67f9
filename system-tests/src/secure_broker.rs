//! A private broker that only speaks TLS (crabka-broker, patched by
//! `scripts/lib/crabka`), for the tests of the services' Kafka security settings:
//! SASL/SCRAM over TLS, client certificates, a server certificate that has expired
//! (and is then replaced), ACLs that the broker enforces.
//!
//! The broker and the development certificates come from the environment that
//! `scripts/test` sets up (`CRABKA_BIN`, `DEV_TLS_*` of `scripts/lib/tls.sh`); a test
//! without them fails, naming them, rather than skipping. So does one that grants ACLs
//! without a Python that has `confluent-kafka` (`KAFKA_ADMIN_PYTHON`, else `python3`):
//! librdkafka's CreateAcls and DeleteAcls are not in rust-rdkafka.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::DevBroker;

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

/// The super user of a broker started with [`SecureBroker::start_with_acls`]: the
/// operator, allowed everything whatever the ACLs say.
pub const ADMIN: &str = "admin";

/// What an ACL is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// The topic of that name.
    Topic(String),
    /// The consumer group of that name.
    Group(String),
    /// The cluster (`kafka-cluster`).
    Cluster,
}

/// An ACL that allows `User:<principal>` `operation` on `resource` from any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// The SCRAM user.
    pub principal: String,
    /// What it may act on.
    pub resource: Resource,
    /// Kafka's name of the operation, in confluent-kafka's spelling: `READ`, `WRITE`,
    /// `DESCRIBE`, `IDEMPOTENT_WRITE`, ...
    pub operation: &'static str,
}

impl Acl {
    /// `principal` may do `operation` on `resource`.
    pub fn allow(principal: &str, operation: &'static str, resource: Resource) -> Self {
        Self { principal: principal.to_owned(), resource, operation }
    }
}

/// A [`DevBroker`] with one TLS listener on a port of its own, in a fresh log
/// directory; stopped and its directory removed when dropped.
pub struct SecureBroker {
    broker: DevBroker,
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
    /// Every SCRAM user it was started with, [`SecureBroker::username`] among them,
    /// and their passwords.
    users: BTreeMap<String, String>,
    /// Holds the certificate and key it presents: copies, which
    /// [`SecureBroker::replace_certificate`] overwrites as an operator would.
    cert_dir: PathBuf,
}

impl fmt::Debug for SecureBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureBroker")
            .field("listener", &self.listener)
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"***")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SecureBroker {
    /// Starts one whose listener asks what `listener` says, and waits until it
    /// accepts connections; anyone who logs in may do anything.
    pub async fn start(listener: Listener) -> anyhow::Result<Self> {
        Self::launch(listener, &[], false).await
    }

    /// Starts a [`Listener::SaslSsl`] one that enforces ACLs (crabka's
    /// `SimpleAclAuthorizer`: what no ACL allows is denied), with a SCRAM user for
    /// each of `users` besides [`SecureBroker::username`], none of them allowed
    /// anything yet, and the super user [`ADMIN`], who may grant ([`SecureBroker::grant`]).
    pub async fn start_with_acls(users: &[&str]) -> anyhow::Result<Self> {
        let mut all = users.to_vec();
        all.push(ADMIN);
        Self::launch(Listener::SaslSsl, &all, true).await
    }

    async fn launch(listener: Listener, others: &[&str], acls: bool) -> anyhow::Result<Self> {
        let tls = DevTls::from_env()?;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let (username, password) = ("order-processing".to_owned(), format!("pw-{}", &run[..16]));
        let mut users = BTreeMap::from([(username.clone(), password.clone())]);
        for user in others {
            let secret = uuid::Uuid::new_v4().simple().to_string();
            users.insert((*user).to_owned(), format!("pw-{}", &secret[..16]));
        }
        let cert_dir = std::env::temp_dir().join(format!("secure-broker-certs-{}", &run[16..28]));
        std::fs::create_dir_all(&cert_dir).with_context(|| format!("creating {}", cert_dir.display()))?;
        let (cert, key) = match listener {
            Listener::ExpiredCertificate => (&tls.expired_cert, &tls.expired_key),
            Listener::SaslSsl | Listener::ClientCertificate => (&tls.broker_cert, &tls.broker_key),
        };
        copy_certificate(cert, key, &cert_dir)?;
        let config = |data: &Path, address: &str| Some(config_file(listener, &tls, &cert_dir, acls, data, address));
        // Seeds SCRAM-SHA-256 and -512 credentials into the new directory; in the
        // environment, not on the command line, where any process could read it.
        let seeded = users.iter().map(|(user, password)| format!("{user}:{password}")).collect::<Vec<_>>().join(",");
        let env = vec![("CRABKA_ADD_SCRAM".to_owned(), seeded)];
        let broker = match DevBroker::start_configured(config, env).await {
            Ok(broker) => broker,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&cert_dir);
                return Err(error.context("starting crabka-broker with TLS"));
            }
        };
        let address = broker.address.clone();
        Ok(Self { broker, listener, address, username, password, tls, users, cert_dir })
    }

    /// The services' settings (environment variables) to reach it as they should:
    /// TLS trusting the development CA, and the SCRAM user or the client certificate.
    pub fn service_env(&self) -> Vec<(String, String)> {
        self.env_with(&self.username, &self.password)
    }

    /// [`SecureBroker::service_env`] logging in as `user`, one of those it was started
    /// with.
    pub fn service_env_as(&self, user: &str) -> anyhow::Result<Vec<(String, String)>> {
        let password = self.users.get(user).with_context(|| format!("the broker has no user {user}"))?;
        Ok(self.env_with(user, password))
    }

    fn env_with(&self, username: &str, password: &str) -> Vec<(String, String)> {
        let ca = self.tls.ca.display().to_string();
        let mut env = vec![("KAFKA_SSL_CA_LOCATION", ca)];
        match self.listener {
            Listener::SaslSsl | Listener::ExpiredCertificate => env.extend([
                ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl".to_owned()),
                ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".to_owned()),
                ("KAFKA_SASL_USERNAME", username.to_owned()),
                ("KAFKA_SASL_PASSWORD", password.to_owned()),
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
        config_from_env(&self.address, self.service_env())
    }

    /// A librdkafka configuration that reaches it as `user`, one of those it was
    /// started with ([`ADMIN`], say).
    pub fn client_config_as(&self, user: &str) -> anyhow::Result<rdkafka::ClientConfig> {
        Ok(config_from_env(&self.address, self.service_env_as(user)?))
    }

    /// Creates `acls` as [`ADMIN`] (CreateAcls, from confluent-kafka: see the module's
    /// documentation); fails unless the broker accepted every one.
    pub async fn grant(&self, acls: &[Acl]) -> anyhow::Result<()> {
        self.change_acls("create", acls).await
    }

    /// Deletes `acls` as [`ADMIN`] (DeleteAcls), as an operator taking a permission
    /// back; fails unless the broker deleted each.
    pub async fn revoke(&self, acls: &[Acl]) -> anyhow::Result<()> {
        self.change_acls("delete", acls).await
    }

    /// Runs [`CHANGE_ACLS`]'s `action` on `acls`.
    async fn change_acls(&self, action: &str, acls: &[Acl]) -> anyhow::Result<()> {
        // Not `ClientConfig::config_map`, which masks the password.
        let config = properties(&self.address, self.service_env_as(ADMIN)?);
        let acls: Vec<serde_json::Value> = acls
            .iter()
            .map(|acl| {
                let (resource_type, name) = match &acl.resource {
                    Resource::Topic(name) => ("TOPIC", name.as_str()),
                    Resource::Group(name) => ("GROUP", name.as_str()),
                    // confluent-kafka's name for the cluster resource.
                    Resource::Cluster => ("BROKER", "kafka-cluster"),
                };
                serde_json::json!({
                    "resource_type": resource_type,
                    "name": name,
                    "principal": format!("User:{}", acl.principal),
                    "operation": acl.operation,
                })
            })
            .collect();
        // On its standard input: the request holds the super user's password.
        let request = serde_json::json!({ "action": action, "config": config, "acls": acls }).to_string();
        tokio::task::spawn_blocking(move || change_acls(&request)).await.context("the ACL task")?
    }

    /// Replaces the certificate and key it presents with the valid development ones
    /// (over the files it reads) and restarts it on the same address and log
    /// directory, as an operator renews an expired certificate.
    pub async fn replace_certificate(&mut self) -> anyhow::Result<()> {
        copy_certificate(&self.tls.broker_cert, &self.tls.broker_key, &self.cert_dir)?;
        self.broker.restart().await.context("restarting the broker with the new certificate")?;
        if self.listener == Listener::ExpiredCertificate {
            self.listener = Listener::SaslSsl;
        }
        Ok(())
    }

    /// Its own log (warnings and errors).
    pub fn log(&self) -> PathBuf {
        self.broker.log()
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.cert_dir);
    }
}

/// The librdkafka properties for `address` from the services' variables `env`.
fn properties(address: &str, env: Vec<(String, String)>) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::from([("bootstrap.servers".to_owned(), address.to_owned())]);
    for (name, value) in env {
        properties.insert(name.trim_start_matches("KAFKA_").to_lowercase().replace('_', "."), value);
    }
    properties
}

/// A librdkafka configuration for `address` from the services' variables `env`.
fn config_from_env(address: &str, env: Vec<(String, String)>) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    for (property, value) in properties(address, env) {
        config.set(property, value);
    }
    config
}

/// Copies certificate `cert` and key `key` to where the broker's configuration names
/// them in `dir`.
fn copy_certificate(cert: &Path, key: &Path, dir: &Path) -> anyhow::Result<()> {
    for (from, to) in [(cert, "broker.pem"), (key, "broker.key")] {
        std::fs::copy(from, dir.join(to))
            .with_context(|| format!("copying {} to {}", from.display(), dir.display()))?;
    }
    Ok(())
}

/// The Python that runs [`CHANGE_ACLS`]: `KAFKA_ADMIN_PYTHON` (which `scripts/test`
/// sets to a virtualenv with confluent-kafka), else `python3`.
fn admin_python() -> PathBuf {
    std::env::var_os("KAFKA_ADMIN_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// Reads `{"action": "create" | "delete", "config": {librdkafka properties}, "acls":
/// [...]}` on its standard input and creates or deletes the ACLs with confluent-kafka's
/// AdminClient; fails saying so without it, or when a deletion found nothing.
const CHANGE_ACLS: &str = r#"
import json, sys
try:
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       AdminClient, ResourcePatternType, ResourceType)
except ImportError as error:
    sys.exit(f"confluent-kafka is not importable ({error}): pip install confluent-kafka, or run scripts/test")
request = json.load(sys.stdin)
kind = AclBinding if request["action"] == "create" else AclBindingFilter
bindings = [kind(ResourceType[acl["resource_type"]], acl["name"], ResourcePatternType.LITERAL,
                 acl["principal"], "*", AclOperation[acl["operation"]], AclPermissionType.ALLOW)
            for acl in request["acls"]]
admin = AdminClient(request["config"])  # kept until the answers came: a dropped client fails them
if request["action"] == "create":
    for future in admin.create_acls(bindings, request_timeout=15).values():
        future.result()
else:
    for binding, future in admin.delete_acls(bindings, request_timeout=15).items():
        if not future.result():
            sys.exit(f"no ACL matched {binding}")
"#;

/// Runs [`CHANGE_ACLS`] on `request`.
fn change_acls(request: &str) -> anyhow::Result<()> {
    let python = admin_python();
    let mut child = Command::new(&python)
        .args(["-c", CHANGE_ACLS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} (KAFKA_ADMIN_PYTHON) to change ACLs", python.display()))?;
    child.stdin.take().context("its standard input")?.write_all(request.as_bytes()).context("sending the ACLs")?;
    let output = child.wait_with_output().context("waiting for it")?;
    if !output.status.success() {
        bail!(
            "changing ACLs with {} failed ({}): {}",
            python.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The TOML configuration of the one listener `listener` on `address`, presenting
/// the certificate and key in `cert_dir`, and with `acls` the authorizer that enforces
/// them. One listener only: with a plaintext one beside it, Metadata would advertise
/// the inter-broker listener's address to every client.
fn config_file(listener: Listener, tls: &DevTls, cert_dir: &Path, acls: bool, data: &Path, address: &str) -> String {
    let quoted = |path: &Path| toml_string(&path.display().to_string());
    // Only the client-certificate listener asks clients for theirs.
    let client_auth = match listener {
        Listener::ClientCertificate => format!("client_ca_path = {}, client_auth = \"Required\"", quoted(&tls.ca)),
        Listener::SaslSsl | Listener::ExpiredCertificate => "client_auth = \"Disabled\"".to_owned(),
    };
    let (cert, key) = (cert_dir.join("broker.pem"), cert_dir.join("broker.key"));
    let tls_config = format!("{{ cert_path = {}, key_path = {}, {client_auth} }}", quoted(&cert), quoted(&key));
    let (protocol, sasl) = match listener {
        Listener::SaslSsl | Listener::ExpiredCertificate => {
            ("SaslSsl", "sasl_config = { enabled_mechanisms = [\"SCRAM-SHA-512\"] }\n")
        }
        Listener::ClientCertificate => ("Ssl", ""),
    };
    // What no ACL allows is denied, except to the super user.
    let authorization = if acls {
        format!("\n[authorization]\ntype = \"simple\"\nsuper_users = [{}]\n", toml_string(ADMIN))
    } else {
        String::new()
    };
    let address = toml_string(address);
    format!(
        "broker_id = 1\nlog_dir = {}\ninter_broker_listener_name = \"secure\"\n\n[[listeners]]\nname = \"secure\"\n\
         bind_addr = {address}\nadvertised = {address}\nprotocol = \"{protocol}\"\ntls_config = {tls_config}\n{sasl}\
         {authorization}",
        quoted(data)
    )
}

/// `value` as a TOML basic string (JSON's escapes are valid TOML ones).
fn toml_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}
