//! The database schemas of both services, as versioned SQL applied at start-up, and
//! the helper that gives each test a database of its own.
//!
//! Each service owns a PostgreSQL schema (`oms`, `inventory` by default) with its own
//! migration history, so the two can share a database server, or even a database,
//! and still deploy independently. A migration both histories have alike, byte for
//! byte, is written once (`shared/`) and applied to each schema as its own. Never edit
//! an applied migration: add one.
//!
//! This crate depends on no other crate of the workspace.

use std::pin::{Pin, pin};
use std::sync::LazyLock;
use std::task::{Poll, Waker};
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

mod pooled;
pub use pooled::Pooled;

/// Migrations of the Order Management Service schema: its own (`oms/`) and those both
/// schemas apply alike (`shared/`), in version order.
pub static OMS: LazyLock<Migrator> = LazyLock::new(|| merged(&OMS_OWN, &SHARED));

/// Migrations of the inventory service schema: its own (`inventory/`) and those both
/// schemas apply alike (`shared/`), in version order.
pub static INVENTORY: LazyLock<Migrator> = LazyLock::new(|| merged(&INVENTORY_OWN, &SHARED));

static OMS_OWN: Migrator = sqlx::migrate!("./oms");
static INVENTORY_OWN: Migrator = sqlx::migrate!("./inventory");

/// Migrations that are the same in both schemas' histories: same version, name and
/// SQL, so the same checksum in each schema's `_sqlx_migrations`. Written once; each
/// schema still records and applies them as its own.
static SHARED: Migrator = sqlx::migrate!("./shared");

/// One schema's history from two embedded sets.
#[derive(Debug)]
struct Merged(&'static Migrator, &'static Migrator);

impl MigrationSource<'static> for Merged {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 'static>> {
        let mut migrations: Vec<Migration> = self.0.iter().chain(self.1.iter()).cloned().collect();
        migrations.sort_by_key(|migration| migration.version);
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// The migrator of `own` and `shared` together, in version order, built the way sqlx
/// builds one from any source ([`Migrator::new`]). That is async, for sources that read
/// files; this one has its migrations in hand, so the first poll finishes it.
fn merged(own: &'static Migrator, shared: &'static Migrator) -> Migrator {
    let mut building = pin!(Migrator::new(Merged(own, shared)));
    match building.as_mut().poll(&mut std::task::Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(migrator)) => migrator,
        Poll::Ready(Err(error)) => panic!("merging the embedded migrations: {error}"),
        Poll::Pending => unreachable!("merging embedded migrations waits on nothing"),
    }
}

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
/// (concurrent starts are safe: both steps take an advisory lock). The migrations run on
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
    create_schema(&mut admin, schema).await.with_context(|| format!("creating schema {schema}"))?;
    migrator.run(&mut admin).await.with_context(|| format!("migrating schema {schema}"))?;
    admin.close().await.ok();

    PgPoolOptions::new()
        .max_connections(max_connections)
        // No ping before every use: it would double the round trips of short
        // statements. A connection the server dropped fails its one query (answered
        // 503, or retried by the consumers and relays) and is replaced.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        // A checkout that waited over 2 s is sqlx's WARN line, one per checkout: 787 in
        // 30 s of a hung database. The pool's gauges (every connection in use) and the
        // requests' durations show that wait; the 503s after the acquire timeout and
        // readiness say why. The line stays for DEBUG.
        .acquire_slow_level(log::LevelFilter::Debug)
        .max_lifetime(sessions.max_lifetime)
        .idle_timeout(sessions.idle_timeout)
        .connect_with(options.options(sessions.options()))
        .await
        .context("opening the connection pool")
}

/// Creates `schema` unless it exists. `IF NOT EXISTS` does not guard against a creator
/// running at the same moment (instances started together on a fresh database would
/// both find the schema missing, and all but one fail on the catalog's unique index),
/// so creators take turns under an advisory lock held until their creation commits.
#[expect(clippy::disallowed_methods, reason = "a connection of its own, closed after, never pooled")]
async fn create_schema(connection: &mut sqlx::PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let mut creating = sqlx::Connection::begin(connection).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('create schema ' || $1))")
        .bind(schema)
        .execute(&mut *creating)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema))).execute(&mut *creating).await?;
    creating.commit().await
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

    /// What a migrator hands sqlx, migration by migration: (version, description,
    /// SHA-384 of the SQL in hex). sqlx compares the checksums with those a deployed
    /// schema recorded, so these must never change.
    fn listed(migrator: &Migrator) -> Vec<(i64, String, String)> {
        migrator
            .iter()
            .map(|m| {
                let checksum: String = m.checksum.iter().map(|byte| format!("{byte:02x}")).collect();
                (m.version, m.description.to_string(), checksum)
            })
            .collect()
    }

    /// The migrations both schemas' deployed histories recorded alike.
    const ALIKE: [(i64, &str, &str); 6] = [
        (
            3,
            "feed checkpoints",
            "1cf43c7d7bf6fb32bace0cb46b01382f99c77ef2662d6fb317507e192e779d856babd1b6260e3d08a407a4c065dcd6a7",
        ),
        (
            5,
            "notify after commit",
            "31beaafcb399b519627f845fb8088e0edbfa6f5b6ab6e9d9ecff167fdac54539d02516874f8cbfcb820e8293ee095da5",
        ),
        (
            6,
            "append function",
            "8b71202ad9cc44d84fbecd239c5a8245c86df57ea668c9f7b8816c73b0474873b808590a28cd88fef7ca83db5e88874b",
        ),
        (
            7,
            "dead letters",
            "b440759a58df898e51a06556a753cb7c34d73dcf4628b608517e4fc304e8b9e5a8cecbb3c7d47b9efc3c6d3200ed9fe5",
        ),
        (
            12,
            "append updates rows",
            "f3d7f5e2128d6d083199150f98045dea3e4e923db9f9993c8c66bb6d70edc41a6a1778a4ffa8a67e8ee2b436947a9b3c",
        ),
        (
            13,
            "append keyed entries",
            "216542e3bace8c0918e583ef5fa822683e0d18343190ea8c3491ad05f84f1f96ec16975f32214c8c438a27c7fe31b302",
        ),
    ];

    /// What `listed` must give for a schema whose own migrations are `own`: those and
    /// [`ALIKE`], in version order.
    fn expected(own: &[(i64, &str, &str)]) -> Vec<(i64, String, String)> {
        let mut rows: Vec<(i64, String, String)> =
            own.iter().chain(&ALIKE).map(|(v, d, c)| (*v, (*d).to_owned(), (*c).to_owned())).collect();
        rows.sort();
        rows
    }

    #[test]
    fn the_oms_gets_the_migrations_its_deployed_schemas_recorded() {
        assert_eq!(
            listed(&OMS),
            expected(&[
                (
                    1,
                    "event store",
                    "376bf437982dca8be0aab2707d030c3ac3e3350a13f9ef6bb0fd4d683a4832b92359299e22ed9c5aacdf1ab3a74cd79b"
                ),
                (
                    2,
                    "order view",
                    "0b15fcef2af03400f0cd98730e60af6e1f1da97864554adb100d03b0390c82fab644c2a1e413998de665aad2aaa00a10"
                ),
                (
                    4,
                    "versioned read models",
                    "bbf4476a27198c43a94e7511ff3b8ce6f8cb8404bfe1ff8a99d1e253fae074a323b6b364d61fc5ed855a82b28317018b"
                ),
                (
                    8,
                    "rerequests",
                    "189f03a3e26280744fc3d606aebdca38a59c1c0536e7a837eaab9b5de8cfad736d483cc3bc81ad9a76d50236d4965bb3"
                ),
                (
                    9,
                    "payment deadline",
                    "d65e3a1dc2adb9239d3fb6f51d3f2d89b9ea4ba0d7d317509f563d7b4d9aaa6ae91fb522f5605c038ce5942f48e1f33a"
                ),
                (
                    10,
                    "resolved at",
                    "ceb87734e5dc62062847cd99a54c1d798ea44e97b8386084d8b252c720588aebaa5a9c5215e8e284808732afe9c73363"
                ),
            ])
        );
    }

    #[test]
    fn the_inventory_service_gets_the_migrations_its_deployed_schemas_recorded() {
        assert_eq!(
            listed(&INVENTORY),
            expected(&[
                (
                    1,
                    "event store",
                    "b0befc36ba481679ae0f794f21e28e02bffcc62bb52069e7ddd0f018c61461f06cffe5f12769f81a8abe3a93ce26e748"
                ),
                (
                    2,
                    "product view",
                    "43ed31c9ae950dbb86b8998f8acf5a1f7569f82f9de7011fd833772fa0acef9c9e3a2ee01624166c0e875abc516dbb81"
                ),
                (
                    4,
                    "versioned read models",
                    "b619c8f0b53931044e9c220ab6b878d272dc533c167149c7a1162f03ea6cec289c1ad700a06ffb4da39d64ca14110309"
                ),
                (
                    8,
                    "product reservations",
                    "3276bf568ae45a7dfe06fd08e0af542b6ae979c1ea61a29b1d823f78cf4ca0384d3c8b5846366d8a453b1cca880875bd"
                ),
                (
                    9,
                    "idempotency keys",
                    "8960ddf6d430c5e58ee8f1887ca0ea7d964697fa55d4ae7b9832fb9c667c135072b665fe81ec628395707d3836c45708"
                ),
                (
                    10,
                    "fulfilment",
                    "321eb9e25e3a08441d5d5a4080da29805ce242ca0a564bc54fae59eecfd08bba97a3952710c202b5764b6b99ad19345c"
                ),
                (
                    11,
                    "reservations by order",
                    "09e74b1f623895fc78d11473a78f66ee53f0fa5e9120667993fbb9d026d39500ff813e15b3dc3bf57743b4367c900bb6"
                ),
            ])
        );
    }

    #[test]
    fn every_session_runs_without_jit_compilation_whatever_its_limits() {
        for sessions in [Sessions::default(), Sessions::default().without_statement_timeout()] {
            assert!(sessions.options().contains(&("jit", "off".to_owned())), "{sessions:?}");
        }
    }
}
