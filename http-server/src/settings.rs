//! Settings both binaries share, read once at start-up from flags and environment.

use std::fmt;
use std::str::FromStr;

use crate::server::LogFormat;

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

/// Database connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseSettings {
    /// PostgreSQL URL of the event store and read models.
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/order_processing", hide_env_values = true)]
    pub url: DatabaseUrl,
    /// Most connections in this process's pool.
    #[arg(long = "database-max-connections", env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
}

/// Logging settings.
#[derive(Debug, Clone, clap::Args)]
pub struct LogSettings {
    /// Log filter: a level (`info`) or per-target directives (`info,sqlx=warn`).
    #[arg(long = "log-level", env = "LOG_LEVEL", default_value = "info")]
    pub level: String,
    /// Log line format.
    #[arg(long = "log-format", env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_never_show_in_debug_output() {
        let url: DatabaseUrl = "postgres://app:hunter2@db:5432/orders".parse().unwrap();
        assert_eq!(format!("{url:?}"), "postgres://app:***@db:5432/orders");
        let url: DatabaseUrl = "postgres://postgres@127.0.0.1/x".parse().unwrap();
        assert_eq!(format!("{url:?}"), "postgres://postgres@127.0.0.1/x");
        assert!("mysql://x".parse::<DatabaseUrl>().is_err());
    }
}
