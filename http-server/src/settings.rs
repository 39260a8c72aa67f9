//! Settings both binaries share, read once at start-up from flags and environment.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

pub use telemetry::{LogFormat, TelemetrySettings};

/// A PostgreSQL URL whose password never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The full URL, password included: pass it to the driver, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be a postgres:// URL".to_owned())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:secret@host/db -> postgres://user:***@host/db
        let redacted = match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let credentials = &self.0[scheme + 3..at];
                match credentials.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &self.0[..scheme + 3], &self.0[at..]),
                    None => self.0.clone(),
                }
            }
            _ => self.0.clone(),
        };
        f.write_str(&redacted)
    }
}

/// Parses a [`DatabaseUrl`] for clap without echoing a refused value: clap's own
/// message would quote it, password included.
#[derive(Debug, Clone, Copy)]
struct DatabaseUrlParser;

impl clap::builder::TypedValueParser for DatabaseUrlParser {
    type Value = DatabaseUrl;

    fn parse_ref(&self, command: &clap::Command, argument: Option<&clap::Arg>, value: &std::ffi::OsStr) -> Result<DatabaseUrl, clap::Error> {
        value.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
            let name = argument.map_or_else(|| "the database URL".to_owned(), |a| format!("--{}", a.get_long().unwrap_or("database-url")));
            let message = format!("{name} must be a postgres:// URL (the value is not shown: it may hold a password)\n");
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
}

impl HttpSettings {
    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
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
        let error = Cli::try_parse_from(["x", "--database-url", "mysql://app:hunter2@db/orders"]).expect_err("not a postgres URL");
        let text = error.to_string();
        assert!(text.contains("must be a postgres:// URL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let parsed = Cli::try_parse_from(["x", "--database-url", "postgres://app:hunter2@db/orders"]).expect("a postgres URL");
        assert_eq!(parsed.database.url.expose(), "postgres://app:hunter2@db/orders");
    }
}
