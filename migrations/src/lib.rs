//! The database schemas of both services, as versioned SQL applied at start-up, and
//! the helper that gives each test a database of its own.
//!
//! Each service owns a PostgreSQL schema (`oms`, `inventory` by default) with its own
//! migration history, so the two can share a database server, or even a database,
//! and still deploy independently. Never edit an applied migration: add one.
//!
//! This crate depends on no other crate of the workspace.

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// Migrations of the Order Management Service schema.
pub static OMS: Migrator = sqlx::migrate!("./oms");

/// Migrations of the inventory service schema.
pub static INVENTORY: Migrator = sqlx::migrate!("./inventory");

/// Connects a pool whose sessions work in `schema`, creating the schema if needed and
/// applying `migrator` (concurrent starts are safe: sqlx takes an advisory lock).
pub async fn connect_and_migrate(
    database_url: &str,
    schema: &str,
    max_connections: u32,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = database_url.parse().context("parsing the database URL")?;
    let mut admin = options.connect().await.context("connecting to the database")?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    admin.close().await.ok();

    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        // No ping before every use: it would double the round trips of short
        // statements. A connection the server dropped fails its one query (answered
        // 503, or retried by the consumers and relays) and is replaced.
        .test_before_acquire(false)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(options.options([("search_path", schema)]))
        .await
        .context("opening the connection pool")?;
    migrator.run(&pool).await.with_context(|| format!("migrating schema {schema}"))?;
    Ok(pool)
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
        administer(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)), "dropping the database").await
    }
}
