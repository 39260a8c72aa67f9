//! Kafka settings, read once at start-up.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;
use secrecy::{ExposeSecret, SecretString};

/// Connection, security and topic settings.
#[derive(Clone, clap::Args)]
pub struct KafkaSettings {
    /// Bootstrap brokers, comma-separated `host:port`.
    #[arg(long = "kafka-brokers", env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[arg(long = "kafka-security-protocol", env = "KAFKA_SECURITY_PROTOCOL", default_value = "plaintext")]
    pub security_protocol: String,
    /// SASL mechanism, e.g. `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    #[arg(long = "kafka-sasl-mechanism", env = "KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    /// SASL password (never printed).
    #[arg(long = "kafka-sasl-password", env = "KAFKA_SASL_PASSWORD", hide_env_values = true, value_parser = parse_secret)]
    pub sasl_password: Option<SecretString>,
    /// CA certificate file for SSL.
    #[arg(long = "kafka-ssl-ca-location", env = "KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<String>,
    /// Client certificate file (PEM) for SSL, for brokers that require one.
    #[arg(long = "kafka-ssl-certificate-location", env = "KAFKA_SSL_CERTIFICATE_LOCATION")]
    pub ssl_certificate_location: Option<String>,
    /// Private key file (PEM) of the client certificate.
    #[arg(long = "kafka-ssl-key-location", env = "KAFKA_SSL_KEY_LOCATION")]
    pub ssl_key_location: Option<String>,
    /// Password of an encrypted client key (never printed).
    #[arg(long = "kafka-ssl-key-password", env = "KAFKA_SSL_KEY_PASSWORD", hide_env_values = true, value_parser = parse_secret)]
    pub ssl_key_password: Option<SecretString>,
    /// Partitions of topics this service creates.
    #[arg(long = "kafka-partitions", env = "KAFKA_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of topics this service creates.
    #[arg(long = "kafka-replication-factor", env = "KAFKA_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: i32,
    /// How often, in milliseconds, consumers measure their lag per partition (the
    /// `consumer_lag_messages` metric: a request for the group's offsets and one per
    /// assigned partition); 0 measures nothing.
    #[arg(long = "kafka-lag-interval-ms", env = "KAFKA_LAG_INTERVAL_MS", default_value_t = 5000)]
    pub lag_interval_ms: u64,
    /// While commits keep coming, the outbox relay reads the event store at most once
    /// per this many milliseconds, so that it publishes batches rather than single
    /// events (fewer produce requests, and fewer, larger batches for the consumers);
    /// after a quiet spell it reads at once. 0 reads after every commit.
    #[arg(long = "relay-linger-ms", env = "RELAY_LINGER_MS", default_value_t = 5)]
    pub relay_linger_ms: u64,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub topics: Topics,
    /// Extra librdkafka producer properties, `key=value`, repeatable. Also read from
    /// every `KAFKA_PRODUCER_<NAME>` variable (`KAFKA_PRODUCER_LINGER_MS=5` is `linger.ms=5`).
    /// Values of properties whose name marks a secret (`password`, `secret`, `key`,
    /// `token`, `jaas`, `credential`) are never printed.
    #[arg(long = "kafka-producer-property", value_parser = PropertyParser)]
    pub producer_properties: Vec<(String, String)>,
    /// Extra librdkafka consumer properties, `key=value`, repeatable. Also read from
    /// every `KAFKA_CONSUMER_<NAME>` variable. Secret values are never printed.
    #[arg(long = "kafka-consumer-property", value_parser = PropertyParser)]
    pub consumer_properties: Vec<(String, String)>,
}

/// Topic names.
#[derive(Debug, Clone, clap::Args)]
pub struct Topics {
    /// Order events published by the OMS.
    #[arg(long = "topic-order-events", env = "KAFKA_TOPIC_ORDER_EVENTS", default_value = "oms.order-events")]
    pub order_events: String,
    /// Per-item outcomes published by the inventory service.
    #[arg(
        long = "topic-order-outcomes",
        env = "KAFKA_TOPIC_ORDER_OUTCOMES",
        default_value = "inventory.order-outcomes"
    )]
    pub order_outcomes: String,
    /// Low-stock, out-of-stock and back-in-stock alerts.
    #[arg(long = "topic-stock-alerts", env = "KAFKA_TOPIC_STOCK_ALERTS", default_value = "inventory.stock-alerts")]
    pub stock_alerts: String,
}

impl Topics {
    /// The dead-letter topic of `topic`.
    pub fn dead_letter(topic: &str) -> String {
        format!("{topic}.dlq")
    }
}

fn parse_secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text))
}

/// Parts of librdkafka property names that mark the value as a secret: passwords,
/// private keys (`ssl.key.pem`, `ssl.key.password`), OAuth client secrets and
/// tokens, JAAS configurations (which embed credentials).
const SECRET_MARKERS: [&str; 7] = ["password", "secret", "key", "token", "jaas", "credential", "oauthbearer.config"];

/// Whether the librdkafka property `name` holds a secret, whose value is never shown.
/// A `*.location` (`ssl.key.location`, `ssl.keystore.location`) names a file, which is
/// shown: which key a client loaded is what one looks for when TLS fails.
pub fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !name.ends_with(".location") && SECRET_MARKERS.iter().any(|marker| name.contains(marker))
}

/// `value`, or `***` when the property `name` holds a secret.
fn shown<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret(name) { "***" } else { value }
}

/// Parses a `key=value` property for clap without echoing a refused value: clap's own
/// message would quote it, secret included.
#[derive(Debug, Clone, Copy)]
struct PropertyParser;

impl clap::builder::TypedValueParser for PropertyParser {
    type Value = (String, String);

    fn parse_ref(
        &self,
        command: &clap::Command,
        argument: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let parsed = value
            .to_str()
            .and_then(|text| text.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .filter(|(k, _)| !k.is_empty());
        parsed.ok_or_else(|| {
            let name = argument.and_then(clap::Arg::get_long).unwrap_or("kafka-producer-property");
            let message = format!("--{name} expects key=value (the value given is not shown: it may hold a secret)\n");
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, message).with_cmd(command)
        })
    }
}

/// Pass-through properties as they may be shown: secrets replaced by `***`.
fn shown_properties(properties: &[(String, String)]) -> Vec<(&str, &str)> {
    properties.iter().map(|(name, value)| (name.as_str(), shown(name, value))).collect()
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| "***"))
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .field("ssl_key_password", &self.ssl_key_password.as_ref().map(|_| "***"))
            .field("topics", &self.topics)
            .field("partitions", &self.partitions)
            .field("lag_interval_ms", &self.lag_interval_ms)
            .field("relay_linger_ms", &self.relay_linger_ms)
            .field("producer_properties", &shown_properties(&self.producer_properties))
            .field("consumer_properties", &shown_properties(&self.consumer_properties))
            .finish()
    }
}

impl KafkaSettings {
    /// Adds the `KAFKA_PRODUCER_*` and `KAFKA_CONSUMER_*` variables of `vars` (the
    /// process environment, read once in `main`) to the pass-through properties.
    pub fn with_env_properties(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        for (key, value) in vars {
            let property =
                |prefix: &str| key.strip_prefix(prefix).map(|name| name.to_ascii_lowercase().replace('_', "."));
            if let Some(name) = property("KAFKA_PRODUCER_") {
                self.producer_properties.push((name, value));
            } else if let Some(name) = property("KAFKA_CONSUMER_") {
                self.consumer_properties.push((name, value));
            }
        }
        self
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("security.protocol", &self.security_protocol)
            // A broker that is down refuses every reconnection: without this, each
            // attempt of each client logs a line (many a second during an outage).
            .set("log.connection.close", "false")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        for (key, value) in [
            ("sasl.mechanism", self.sasl_mechanism.as_deref()),
            ("sasl.username", self.sasl_username.as_deref()),
            ("sasl.password", self.sasl_password.as_ref().map(|p| p.expose_secret())),
            ("ssl.ca.location", self.ssl_ca_location.as_deref()),
            ("ssl.certificate.location", self.ssl_certificate_location.as_deref()),
            ("ssl.key.location", self.ssl_key_location.as_deref()),
            ("ssl.key.password", self.ssl_key_password.as_ref().map(|p| p.expose_secret())),
        ] {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        config
    }

    /// An admin client configuration.
    pub fn admin_config(&self) -> ClientConfig {
        self.base()
    }

    /// A producer configuration: idempotent, acknowledged by all in-sync replicas,
    /// sending at once (the relay queues whole batches, see `relay_linger_ms`), with a
    /// bounded queue, then the pass-through properties.
    ///
    /// A message unacknowledged after 10 s fails, and the relay retries its batch
    /// (after replacing a producer that a broker restarted empty no longer knows), so
    /// publishing resumes within seconds of the broker's return.
    ///
    /// The queue bounds memory during a broker outage: the relay keeps at most a few
    /// batches in flight (far below the bounds), and a full queue is a transient
    /// failure that is retried, never a reason to buffer more.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "10000")
            .set("queue.buffering.max.messages", "50000")
            .set("queue.buffering.max.kbytes", "131072");
        apply(&mut config, &self.producer_properties);
        config
    }

    /// A consumer configuration for `group`: offsets are stored by the application
    /// only after a message's effect is durable, and committed in the background.
    /// A fetch waits up to 500 ms for data: the broker answers as soon as a message
    /// arrives, so the wait only spaces the empty fetches of an idle consumer (at 20 ms
    /// they kept the development broker at 2% of a core with no orders; latency the
    /// same, docs/benchmarks.md).
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "500")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "500")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        apply(&mut config, &self.consumer_properties);
        config
    }
}

fn apply(config: &mut ClientConfig, properties: &[(String, String)]) {
    for (key, value) in properties {
        config.set(key, value);
    }
    // librdkafka's `debug` contexts log at debug level, below the warnings kept
    // otherwise: asking for them lets them through (to the `librdkafka` log target).
    if config.get("debug").is_some() {
        config.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
}

/// The configured properties, for logs and tests; secrets (see [`is_secret`]) as `***`.
pub fn describe(config: &ClientConfig) -> BTreeMap<String, String> {
    config.config_map().iter().map(|(k, v)| (k.to_string(), shown(k, v).to_owned())).collect()
}

/// The Kafka flags alone as a command line, for tests of what they configure.
#[cfg(test)]
#[derive(clap::Parser)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) kafka: KafkaSettings,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn pass_through_properties_come_from_flags_and_prefixed_variables() {
        let cli = Cli::parse_from(["x", "--kafka-producer-property", "compression.type=zstd"]);
        let settings = cli.kafka.with_env_properties([
            ("KAFKA_PRODUCER_BATCH_NUM_MESSAGES".to_owned(), "1".to_owned()),
            ("KAFKA_PRODUCER_QUEUE_BUFFERING_MAX_MESSAGES".to_owned(), "500".to_owned()),
            ("KAFKA_CONSUMER_FETCH_WAIT_MAX_MS".to_owned(), "5".to_owned()),
            ("KAFKA_BROKERS".to_owned(), "ignored:1".to_owned()),
        ]);
        let producer = describe(&settings.producer_config());
        assert_eq!(producer.get("batch.num.messages").map(String::as_str), Some("1"));
        assert_eq!(producer.get("compression.type").map(String::as_str), Some("zstd"));
        assert_eq!(producer.get("enable.idempotence").map(String::as_str), Some("true"));
        assert_eq!(
            producer.get("queue.buffering.max.kbytes").map(String::as_str),
            Some("131072"),
            "the producer queue is bounded"
        );
        assert_eq!(
            producer.get("queue.buffering.max.messages").map(String::as_str),
            Some("500"),
            "pass-through wins over the bound"
        );
        let consumer = describe(&settings.consumer_config("g"));
        assert_eq!(consumer.get("fetch.wait.max.ms").map(String::as_str), Some("5"), "pass-through wins over defaults");
        assert_eq!(consumer.get("enable.auto.offset.store").map(String::as_str), Some("false"));
    }

    #[test]
    fn the_sasl_password_is_never_printed() {
        let cli = Cli::parse_from(["x", "--kafka-sasl-password", "hunter2"]);
        assert!(!format!("{:?}", cli.kafka).contains("hunter2"));
        assert!(!format!("{:?}", describe(&cli.kafka.producer_config())).contains("hunter2"));
        assert_eq!(cli.kafka.producer_config().get("sasl.password"), Some("hunter2"), "the client still gets it");
    }

    #[test]
    fn the_ssl_key_password_is_never_printed_but_reaches_every_client() {
        let cli = Cli::parse_from([
            "x",
            "--kafka-ssl-certificate-location",
            "/tls/client.crt",
            "--kafka-ssl-key-location",
            "/tls/client.key",
            "--kafka-ssl-key-password",
            "hunter5",
        ]);
        let settings = cli.kafka;
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter5"), "{debug}");
        assert!(debug.contains(r#"ssl_key_password: Some("***")"#), "redacted, not dropped: {debug}");
        let configs = [
            ("admin", settings.admin_config()),
            ("producer", settings.producer_config()),
            ("consumer", settings.consumer_config("g")),
        ];
        for (client, config) in &configs {
            let shown = describe(config);
            assert!(!format!("{shown:?}").contains("hunter5"), "[{client}] shows the key password: {shown:?}");
            assert_eq!(shown.get("ssl.key.password").map(String::as_str), Some("***"), "[{client}]");
            assert_eq!(config.get("ssl.key.password"), Some("hunter5"), "[{client}] the client still gets it");
            assert_eq!(config.get("ssl.certificate.location"), Some("/tls/client.crt"), "[{client}]");
            assert_eq!(config.get("ssl.key.location"), Some("/tls/client.key"), "[{client}]");
            assert_eq!(
                shown.get("ssl.key.location").map(String::as_str),
                Some("/tls/client.key"),
                "[{client}] a key's file name is not a secret"
            );
        }
    }

    #[test]
    fn client_certificate_settings_are_read_from_their_variables_and_help_hides_the_password() {
        use clap::CommandFactory;
        let command = Cli::command();
        let by_variable = |name: &str| command.get_arguments().find(|a| a.get_env().is_some_and(|e| e == name));
        for name in ["KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION", "KAFKA_SSL_KEY_PASSWORD"] {
            assert!(by_variable(name).is_some(), "a setting reads {name}");
        }
        let password = by_variable("KAFKA_SSL_KEY_PASSWORD").expect("the key password setting");
        assert!(password.is_hide_env_values_set(), "--help hides the key password's value");
    }

    /// Secret pass-through properties: (property, environment variable, value).
    const SECRETS: [(&str, &str, &str); 8] = [
        ("ssl.key.password", "KAFKA_PRODUCER_SSL_KEY_PASSWORD", "s3cret-key-password"),
        ("ssl.key.pem", "KAFKA_PRODUCER_SSL_KEY_PEM", "s3cret-BEGIN-PRIVATE-KEY"),
        ("ssl.keystore.password", "KAFKA_CONSUMER_SSL_KEYSTORE_PASSWORD", "s3cret-keystore"),
        ("sasl.password", "KAFKA_CONSUMER_SASL_PASSWORD", "s3cret-sasl"),
        ("sasl.oauthbearer.client.secret", "KAFKA_PRODUCER_SASL_OAUTHBEARER_CLIENT_SECRET", "s3cret-oauth-client"),
        ("sasl.oauthbearer.config", "KAFKA_CONSUMER_SASL_OAUTHBEARER_CONFIG", "principal=admin s3cret-unsecured-jwt"),
        ("sasl.jaas.config", "KAFKA_PRODUCER_SASL_JAAS_CONFIG", "PlainLoginModule password=s3cret-jaas"),
        ("sasl.oauthbearer.token.endpoint.url.token", "KAFKA_CONSUMER_SASL_OAUTHBEARER_TOKEN", "s3cret-token"),
    ];

    #[test]
    fn secret_pass_through_properties_are_never_shown_whether_given_by_flag_or_variable() {
        let mut args = vec!["x".to_owned()];
        for (property, _, value) in SECRETS {
            args.push("--kafka-producer-property".to_owned());
            args.push(format!("{property}=flag-{value}"));
            args.push("--kafka-consumer-property".to_owned());
            args.push(format!("{property}=flag-{value}"));
        }
        let settings = Cli::parse_from(&args).kafka.with_env_properties(
            SECRETS.iter().map(|(_, variable, value)| ((*variable).to_owned(), format!("env-{value}"))),
        );
        let mut shown = vec![("Debug", format!("{settings:?}"))];
        shown.push(("describe producer", format!("{:?}", describe(&settings.producer_config()))));
        shown.push(("describe consumer", format!("{:?}", describe(&settings.consumer_config("g")))));
        shown.push(("describe admin", format!("{:?}", describe(&settings.admin_config()))));
        for (what, text) in &shown {
            assert!(!text.contains("s3cret"), "[{what}] shows a secret: {text}");
        }
        assert!(shown[0].1.contains(r#"("ssl.key.password", "***")"#), "redacted, not dropped: {}", shown[0].1);
        assert!(shown[1].1.contains(r#""ssl.key.password": "***""#), "{}", shown[1].1);
        // The clients still get the values; the environment wins over flags (it comes later).
        let producer = settings.producer_config();
        assert_eq!(producer.get("ssl.key.password"), Some("env-s3cret-key-password"));
        assert_eq!(settings.consumer_config("g").get("sasl.password"), Some("env-s3cret-sasl"));
        // Ordinary properties stay visible.
        let plain = Cli::parse_from(["x", "--kafka-producer-property", "compression.type=zstd"]).kafka;
        assert!(
            format!("{plain:?}").contains("zstd") && describe(&plain.producer_config())["compression.type"] == "zstd"
        );
    }

    #[test]
    fn a_malformed_property_is_refused_without_echoing_it() {
        let error = Cli::try_parse_from(["x", "--kafka-producer-property", "ssl.key.password:s3cret"])
            .err()
            .expect("not key=value");
        let text = error.to_string();
        assert!(text.contains("expects key=value"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
