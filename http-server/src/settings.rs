//! Settings both binaries share, read once at start-up from flags and environment.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
pub use telemetry::{LogFormat, TelemetrySettings};

/// A PostgreSQL URL whose password never appears in `Debug` output or logs: it is
/// held as a [`SecretString`] and shown with every password redacted (the one in
/// the user info and a `password` query parameter alike).
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// The full URL, password included: pass it to the driver, never to a log.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for DatabaseUrl {}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self(SecretString::from(s.to_owned())))
        } else {
            Err("must be a postgres:// URL".to_owned())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_database_url(self.expose()))
    }
}

/// `url` with its passwords replaced by `***`: postgres://user:secret@host/db ->
/// postgres://user:***@host/db, and `?password=secret` -> `?password=***`.
fn redact_database_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match base[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => format!("{key}=***"),
                _ => parameter.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// Parses a [`DatabaseUrl`] for clap without echoing a refused value: clap's own
/// message would quote it, password included.
#[derive(Debug, Clone, Copy)]
struct DatabaseUrlParser;

impl clap::builder::TypedValueParser for DatabaseUrlParser {
    type Value = DatabaseUrl;

    fn parse_ref(
        &self,
        command: &clap::Command,
        argument: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DatabaseUrl, clap::Error> {
        value.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
            let name = argument.map_or_else(
                || "the database URL".to_owned(),
                |a| format!("--{}", a.get_long().unwrap_or("database-url")),
            );
            let message =
                format!("{name} must be a postgres:// URL (the value is not shown: it may hold a password)\n");
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, message).with_cmd(command)
        })
    }
}

/// Database connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseSettings {
    /// PostgreSQL URL of the event store and read models.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/order_processing",
        hide_env_values = true,
        value_parser = DatabaseUrlParser
    )]
    pub url: DatabaseUrl,
    /// Most connections in this process's pool.
    #[arg(long = "database-max-connections", env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
}

/// How the sessions of a service's database pool behave, so that no statement, open
/// transaction or dead connection can hang the pipeline (0 turns a timeout off).
/// Operator commands (rebuild, export) run without the statement timeout.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseSessionSettings {
    // Each field is named as its flag and its variable are, so clap derives both from
    // the name: `database_statement_timeout_ms` is `--database-statement-timeout-ms` and
    // `DATABASE_STATEMENT_TIMEOUT_MS`.
    /// Longest a statement may run, in milliseconds, before the server cancels it (the
    /// failure is transient: requests answer 503, consumers and the relay retry).
    #[arg(long, env, value_name = "STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    pub database_statement_timeout_ms: u64,
    /// Longest a session may sit idle inside a transaction, in milliseconds, before the
    /// server ends it (and rolls the transaction back): an abandoned transaction would
    /// otherwise hold back the feed of every service on the server.
    #[arg(long, env, value_name = "IDLE_IN_TRANSACTION_TIMEOUT_MS", default_value_t = 60_000)]
    pub database_idle_in_transaction_timeout_ms: u64,
    /// Seconds of silence on a connection before the server's TCP keepalive probes it,
    /// so that the server finds (and ends) the sessions of clients that vanished.
    #[arg(long, env, value_name = "TCP_KEEPALIVES_IDLE_SECS", default_value_t = 30)]
    pub database_tcp_keepalives_idle_secs: u32,
    /// Seconds between two unanswered keepalive probes.
    #[arg(long, env, value_name = "TCP_KEEPALIVES_INTERVAL_SECS", default_value_t = 10)]
    pub database_tcp_keepalives_interval_secs: u32,
    /// Unanswered keepalive probes after which the server drops the connection.
    #[arg(long, env, value_name = "TCP_KEEPALIVES_COUNT", default_value_t = 3)]
    pub database_tcp_keepalives_count: u32,
    /// Longest a pooled connection lives, in seconds, before it is replaced (after its
    /// current use).
    #[arg(long, env, value_name = "MAX_LIFETIME_SECS", default_value_t = 1800)]
    pub database_max_lifetime_secs: u64,
    /// Longest a pooled connection may stay unused, in seconds, before it is closed.
    #[arg(long, env, value_name = "IDLE_TIMEOUT_SECS", default_value_t = 600)]
    pub database_idle_timeout_secs: u64,
}

impl DatabaseSessionSettings {
    /// The session settings for the migrations crate's pool.
    pub fn sessions(&self) -> migrations::Sessions {
        let off_if_zero = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        migrations::Sessions {
            statement_timeout: off_if_zero(self.database_statement_timeout_ms),
            idle_in_transaction_timeout: off_if_zero(self.database_idle_in_transaction_timeout_ms),
            tcp_keepalives_idle_secs: self.database_tcp_keepalives_idle_secs,
            tcp_keepalives_interval_secs: self.database_tcp_keepalives_interval_secs,
            tcp_keepalives_count: self.database_tcp_keepalives_count,
            max_lifetime: off_if_zero(self.database_max_lifetime_secs.saturating_mul(1000)),
            idle_timeout: off_if_zero(self.database_idle_timeout_secs.saturating_mul(1000)),
        }
    }
}

/// How a service watches its background tasks and how long it may take to stop.
#[derive(Debug, Clone, clap::Args)]
pub struct LifecycleSettings {
    /// Longest the service takes to stop after SIGTERM or Ctrl-C, in milliseconds:
    /// past it, it exits anyway, logging what had not finished (offsets not committed
    /// are redelivered and the relay republishes from its checkpoint at the next
    /// start). Keep it below the orchestrator's grace period.
    #[arg(long = "shutdown-grace-ms", env = "SHUTDOWN_GRACE_MS", default_value_t = 25_000)]
    pub shutdown_grace_ms: u64,
    /// Readiness reports the pipeline down when the oldest event the relay has not
    /// published was committed longer ago than this, in milliseconds (the relay is
    /// stuck: the broker unreachable, say).
    #[arg(long = "pipeline-stall-after-ms", env = "PIPELINE_STALL_AFTER_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub pipeline_stall_after_ms: u64,
}

impl LifecycleSettings {
    /// The shutdown grace.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The age of the oldest unpublished event past which the pipeline counts as stalled.
    pub fn pipeline_stall_after(&self) -> Duration {
        Duration::from_millis(self.pipeline_stall_after_ms)
    }
}

/// HTTP settings both services share.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes; larger ones are answered 413.
    #[arg(long, env = "HTTP_BODY_LIMIT_BYTES", default_value_t = 64 * 1024)]
    pub body_limit_bytes: usize,
    /// Longest a request may take, in milliseconds; a slower one is answered 503 (a
    /// command may still have been committed: retry with the same `Idempotency-Key`).
    #[arg(long = "request-timeout-ms", env = "HTTP_REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
    /// Origins allowed to call the API from a browser (CORS), comma-separated, e.g.
    /// `https://shop.example.com`; `*` allows any. No CORS headers when empty.
    #[arg(long = "cors-allowed-origins", env = "HTTP_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// Requests per second this instance serves, all clients together; beyond it and
    /// its burst, requests are answered 429. No limit when unset.
    #[arg(long = "rate-limit-per-second", env = "HTTP_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: Option<NonZeroU32>,
    /// Requests accepted at once (the size of the token bucket); the rate itself when
    /// unset.
    #[arg(long = "rate-limit-burst", env = "HTTP_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<NonZeroU32>,
    /// Connections served at once; the next waits in the listen backlog until one
    /// ends. Keep it under the process's file descriptor limit, with room for the
    /// database and broker connections.
    #[arg(id = "http_max_connections", value_name = "CONNECTIONS", long = "max-connections", env = "HTTP_MAX_CONNECTIONS", default_value_t = crate::ConnectionLimits::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Longest a connection may take to send a whole request head, in milliseconds,
    /// from its start or its previous response; it is closed then. Idle keep-alive
    /// connections are closed then too: keep it above the idle timeout of a load
    /// balancer in front, which would otherwise reuse a connection being closed.
    #[arg(long = "header-read-timeout-ms", env = "HTTP_HEADER_READ_TIMEOUT_MS", default_value_t = crate::ConnectionLimits::DEFAULT_HEADER_READ_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_ms: u64,
}

impl HttpSettings {
    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How many connections are served at once, and how long a request head may take.
    pub fn connection_limits(&self) -> crate::ConnectionLimits {
        crate::ConnectionLimits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
        }
    }

    /// The allowed CORS origins, blanks dropped.
    pub fn cors_origins(&self) -> Vec<&str> {
        self.cors_allowed_origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_never_show_in_debug_output() {
        let url: DatabaseUrl = "postgres://app:hunter2@db:5432/orders".parse().expect("a postgres URL");
        assert_eq!(format!("{url:?}"), "postgres://app:***@db:5432/orders");
        let url: DatabaseUrl = "postgres://postgres@127.0.0.1/x".parse().expect("a postgres URL");
        assert_eq!(format!("{url:?}"), "postgres://postgres@127.0.0.1/x");
        let url: DatabaseUrl =
            "postgres://db/orders?user=app&password=hunter2&sslmode=require".parse().expect("a postgres URL");
        assert_eq!(format!("{url:?}"), "postgres://db/orders?user=app&password=***&sslmode=require");
        let url: DatabaseUrl = "postgresql://app:p%40ss@db/orders?sslpassword=hunter2".parse().expect("a postgres URL");
        assert_eq!(format!("{url:?}"), "postgresql://app:***@db/orders?sslpassword=***");
        assert!("mysql://x".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn a_refused_database_url_is_not_echoed() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            database: DatabaseSettings,
        }
        let error = Cli::try_parse_from(["x", "--database-url", "mysql://app:hunter2@db/orders"])
            .expect_err("not a postgres URL");
        let text = error.to_string();
        assert!(text.contains("must be a postgres:// URL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let parsed =
            Cli::try_parse_from(["x", "--database-url", "postgres://app:hunter2@db/orders"]).expect("a postgres URL");
        assert_eq!(parsed.database.url.expose(), "postgres://app:hunter2@db/orders");
    }
}
