//! The database schemas of both services, as versioned SQL applied at start-up, and
//! the helper that gives each test a database of its own.
//!
//! Each service owns a PostgreSQL schema (`oms`, `inventory` by default) with its own
//! migration history, so the two can share a database server, or even a database,
//! and still deploy independently. Never edit an applied migration: add one.
//!
//! This crate depends on no other crate of the workspace.

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// Migrations of the Order Management Service schema.
pub static OMS: Migrator = sqlx::migrate!("./oms");

/// Migrations of the inventory service schema.
pub static INVENTORY: Migrator = sqlx::migrate!("./inventory");

/// How the pool's sessions behave, so that no statement, forgotten transaction or
/// dead connection can hang whoever waits on it. Each is a session option sent at
/// connection time, so it holds for every statement of every pooled connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    /// `statement_timeout`: the server cancels a statement that runs longer (SQLSTATE
    /// 57014, a transient failure). `None`: no limit.
    pub statement_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout`: the server ends a session idle inside a
    /// transaction for longer (rolling it back), so that a stuck client cannot hold
    /// back the commit-ordered feed of every schema on the server. `None`: no limit.
    pub idle_in_transaction_timeout: Option<Duration>,
    /// `tcp_keepalives_idle`, in seconds: silence after which the server probes the
    /// connection (0: the operating system's default).
    pub tcp_keepalives_idle_secs: u32,
    /// `tcp_keepalives_interval`, in seconds, between unanswered probes.
    pub tcp_keepalives_interval_secs: u32,
    /// `tcp_keepalives_count`: unanswered probes after which the server drops the
    /// connection (and, with it, the session's locks).
    pub tcp_keepalives_count: u32,
    /// A pooled connection is closed (after its current use) once it is this old.
    pub max_lifetime: Option<Duration>,
    /// A pooled connection unused this long is closed.
    pub idle_timeout: Option<Duration>,
}

impl Default for Sessions {
    /// What the services run with unless configured otherwise: statements up to 30 s,
    /// 60 s idle in a transaction, keepalive probes after 30 s of silence (every 10 s,
    /// 3 tries), connections replaced after 30 minutes, closed after 10 unused.
    fn default() -> Self {
        Self {
            statement_timeout: Some(Duration::from_secs(30)),
            idle_in_transaction_timeout: Some(Duration::from_secs(60)),
            tcp_keepalives_idle_secs: 30,
            tcp_keepalives_interval_secs: 10,
            tcp_keepalives_count: 3,
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
        }
    }
}

impl Sessions {
    /// The same without a statement timeout: for operator commands (rebuild, export),
    /// whose statements over the whole history may rightly run long.
    pub fn without_statement_timeout(self) -> Self {
        Self { statement_timeout: None, ..self }
    }

    /// The session options, as PostgreSQL settings (`0` turns a timeout off). JIT
    /// compilation is always off: these sessions run short statements, and the planner
    /// prices a read of an aggregate's latest events by the size of its whole history
    /// (a third of a million rows for a product with a million events), above
    /// `jit_above_cost`, so each such load compiled its query first (5 ms per
    /// statement, 25 ms more for a session's first, for a 0.4 ms index scan).
    fn options(&self) -> [(&'static str, String); 6] {
        let millis = |limit: Option<Duration>| limit.map_or(0, |d| d.as_millis().max(1)).to_string();
        [
            ("jit", "off".to_owned()),
            ("statement_timeout", millis(self.statement_timeout)),
            ("idle_in_transaction_session_timeout", millis(self.idle_in_transaction_timeout)),
            ("tcp_keepalives_idle", self.tcp_keepalives_idle_secs.to_string()),
            ("tcp_keepalives_interval", self.tcp_keepalives_interval_secs.to_string()),
            ("tcp_keepalives_count", self.tcp_keepalives_count.to_string()),
        ]
    }
}

/// Connects a pool whose sessions work in `schema`, with the default [`Sessions`],
/// creating the schema if needed and applying `migrator` (see
/// [`connect_and_migrate_with`]).
pub async fn connect_and_migrate(
    database_url: &str,
    schema: &str,
    max_connections: u32,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    connect_and_migrate_with(database_url, schema, max_connections, &Sessions::default(), migrator).await
}

/// Connects a pool of up to `max_connections` whose sessions work in `schema` and
/// behave as `sessions` says, creating the schema if needed and applying `migrator`
/// (concurrent starts are safe: sqlx takes an advisory lock). The migrations run on
/// a connection of their own without the statement timeout: building an index over
/// a large table may rightly take minutes.
pub async fn connect_and_migrate_with(
    database_url: &str,
    schema: &str,
    max_connections: u32,
    sessions: &Sessions,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = database_url.parse().context("parsing the database URL")?;
    let options = options.options([("search_path", schema.to_owned())]);
    let migrating = sessions.clone().without_statement_timeout();
    let mut admin =
        options.clone().options(migrating.options()).connect().await.context("connecting to the database")?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    migrator.run(&mut admin).await.with_context(|| format!("migrating schema {schema}"))?;
    admin.close().await.ok();

    PgPoolOptions::new()
        .max_connections(max_connections)
        // No ping before every use: it would double the round trips of short
        // statements. A connection the server dropped fails its one query (answered
        // 503, or retried by the consumers and relays) and is replaced.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .max_lifetime(sessions.max_lifetime)
        .idle_timeout(sessions.idle_timeout)
        .connect_with(options.options(sessions.options()))
        .await
        .context("opening the connection pool")
}

/// Quotes an SQL identifier (schema or database name) so that any text is safe in DDL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Test support: a fresh database per test, never shared, so tests cannot depend on
/// each other's leftovers.
pub mod testing {
    use super::*;

    /// The server tests use: `TEST_DATABASE_URL`, else `DATABASE_URL`, else the local one.
    pub fn server_url() -> String {
        std::env::var("TEST_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    fn server() -> anyhow::Result<PgConnectOptions> {
        server_url().parse().context("parsing the test database URL")
    }

    /// Runs `statement` (one that cannot run inside a database's own session, such as
    /// CREATE or DROP DATABASE) on the test server.
    async fn administer(statement: &str, doing: &'static str) -> anyhow::Result<()> {
        let mut admin = server()?.connect().await.context("connecting to the test database server")?;
        sqlx::query(statement).execute(&mut admin).await.context(doing)?;
        admin.close().await.ok();
        Ok(())
    }

    /// Creates an empty database named `test_<uuid>` on the test server and returns its URL.
    pub async fn create_database() -> anyhow::Result<String> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        administer(&format!("CREATE DATABASE {}", quote_ident(&name)), "creating the test database").await?;
        Ok(server()?.database(&name).to_url_lossy().to_string())
    }

    /// Drops the database of `url` (made by [`create_database`]), closing whatever
    /// sessions it still has.
    pub async fn drop_database(url: &str) -> anyhow::Result<()> {
        let database: PgConnectOptions = url.parse().context("parsing the database URL")?;
        let name = database.get_database().context("the URL names no database")?;
        administer(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)), "dropping the database")
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_session_runs_without_jit_compilation_whatever_its_limits() {
        for sessions in [Sessions::default(), Sessions::default().without_statement_timeout()] {
            assert!(sessions.options().contains(&("jit", "off".to_owned())), "{sessions:?}");
        }
    }
}
