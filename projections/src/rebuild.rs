//! Rebuilding a read model from the event store: blue/green, resumable, verifiable.
//!
//! [`rebuild`] fills the model's next generation table from the commit-ordered event
//! feed while the active table keeps serving, then points the model's SQL view at the
//! new table in one transaction. It is safe with the services running or stopped:
//!
//! 1. it registers the new generation; from then on every commit also writes the new
//!    table (commands read the registry after appending, see [`crate::Projector`]);
//! 2. it notes the *horizon*, the next transaction id: a transaction above it read the
//!    registry after the registration, so it wrote both tables; only those below may
//!    have written the active table alone;
//! 3. it folds the whole feed into the new table, saving its position in the same
//!    transaction as each batch, so an interrupted rebuild resumes where it stopped;
//! 4. once every transaction below the horizon has ended and the feed is drained, the
//!    new table holds everything the active one does: the view moves over atomically.
//!    Readers never see a missing or older row; the old table stays until the next
//!    rebuild.
//!
//! [`verify`] folds the feed into a scratch table and reports every row that differs
//! from the active table, touching nothing that serves.

use std::time::{Duration, Instant};

use eventstore::{Events, Feed, FeedPosition, Projection};
use migrations::Pooled;
use sqlx::PgPool;

use crate::ProjectionError;
use crate::catch_up::changes_of;
use crate::model::{Projector, ViewTable, generations, table_name};
use crate::view::View;

/// Events folded per transaction.
pub const BATCH_SIZE: i64 = 10_000;

type Aggregate<T> = <<T as ViewTable>::View as View>::Aggregate;

/// How far a rebuild has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Events read from the feed so far (all aggregate types of the schema).
    pub events: u64,
    /// Events in the store when the rebuild started.
    pub total: u64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The generation now active.
    pub generation: i32,
    /// Events folded by this run (a resumed run folds only the rest).
    pub events: u64,
    /// Whether it continued an interrupted rebuild.
    pub resumed: bool,
    /// How long this run took.
    pub elapsed: Duration,
}

/// One row that differs between the active table and a fresh fold.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The row's key.
    pub key: String,
    /// The row as served, if there is one.
    pub live: Option<serde_json::Value>,
    /// The row as the events fold, if there is one.
    pub rebuilt: Option<serde_json::Value>,
}

fn feed_name(table: &str) -> String {
    format!("rebuild:{table}")
}

async fn count_events(pool: &PgPool) -> Result<u64, ProjectionError> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?;
    Ok(total.max(0) as u64)
}

/// Rebuilds model `T` into its next generation and makes it the active one, or
/// continues the rebuild an earlier run left unfinished. `progress` is called after
/// every batch.
pub async fn rebuild<T: ViewTable>(
    pool: &PgPool,
    events: &Events<Aggregate<T>>,
    mut progress: impl FnMut(Progress),
) -> Result<Rebuilt, ProjectionError> {
    let started = Instant::now();
    let (generation, resumed) = register(pool, T::MODEL, T::KEY).await?;
    let table = table_name(T::MODEL, generation);
    let feed = Feed::new(pool.clone(), feed_name(&table));
    let registered = {
        let mut connection = pool.acquire().await?;
        generations(&mut connection, T::MODEL).await?
    };
    let horizon = match registered.horizon {
        Some(horizon) => horizon,
        None => {
            let horizon = feed.next_transaction_id().await?;
            sqlx::query("UPDATE read_models SET horizon = $2::text::xid8 WHERE name = $1 AND building_generation = $3")
                .bind(T::MODEL)
                .bind(horizon.to_string())
                .bind(generation)
                .execute(pool)
                .await?;
            horizon
        }
    };
    let total = count_events(pool).await?;
    let folded = fold_feed::<T>(pool, events, &feed, &table, horizon, total, &mut progress).await?;
    copy_secondary_indexes(pool, &table_name(T::MODEL, registered.active), &table).await?;
    switch(pool, T::MODEL, generation).await?;
    feed.reset().await?;
    tracing::info!(model = T::MODEL, generation, events = folded, resumed, "read model rebuilt and switched");
    Ok(Rebuilt { generation, events: folded, resumed, elapsed: started.elapsed() })
}

/// Registers the next generation (creating its empty table) or finds the one being
/// built; returns it and whether it was already there.
async fn register(pool: &PgPool, model: &str, key: &str) -> Result<(i32, bool), ProjectionError> {
    let mut connection = Pooled::acquire(pool).await?;
    let mut transaction = connection.begin().await?;
    let (active, building): (i32, Option<i32>) =
        sqlx::query_as("SELECT active_generation, building_generation FROM read_models WHERE name = $1 FOR UPDATE")
            .bind(model)
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| ProjectionError::Corrupt(format!("read model {model} is not registered")))?;
    if let Some(building) = building {
        return Ok((building, true));
    }
    let generation = active + 1;
    let (previous, active_table, new) =
        (table_name(model, active - 1), table_name(model, active), table_name(model, generation));
    // The table of the generation before the active one is no longer read by anyone.
    // The new one starts with its primary key only (upserts need it); its other
    // indexes are built once it is filled, which is much faster than keeping them up
    // to date row by row.
    for ddl in [
        format!("DROP TABLE IF EXISTS {previous}"),
        format!("DROP TABLE IF EXISTS {new}"),
        format!("CREATE TABLE {new} (LIKE {active_table} INCLUDING ALL EXCLUDING INDEXES)"),
        format!("ALTER TABLE {new} ADD PRIMARY KEY ({key})"),
    ] {
        sqlx::query(&ddl).persistent(false).execute(&mut *transaction).await?;
    }
    sqlx::query("UPDATE read_models SET building_generation = $2, horizon = NULL WHERE name = $1")
        .bind(model)
        .bind(generation)
        .execute(&mut *transaction)
        .await?;
    sqlx::query("DELETE FROM feed_checkpoints WHERE name = $1")
        .bind(feed_name(&new))
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok((generation, false))
}

/// Folds the feed from `feed`'s position into `table` until it is drained and every
/// transaction below `horizon` has ended. Returns the events read.
///
/// Reading and decoding run in a task of their own, a batch or two ahead of the
/// folding and writing, so the two halves of the work use two cores.
async fn fold_feed<T: ViewTable>(
    pool: &PgPool,
    events: &Events<Aggregate<T>>,
    feed: &Feed,
    table: &str,
    horizon: u64,
    total: u64,
    progress: &mut impl FnMut(Progress),
) -> Result<u64, ProjectionError> {
    let projector = Projector::<T>::into_table(table);
    let position: FeedPosition = feed.checkpoint().await?;
    let mut done = if position == FeedPosition::default() { 0 } else { count_until(pool, position).await? };
    let mut folded = 0u64;
    let (batches, mut decoded) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(read_decoded(feed.clone(), events.clone(), position, horizon, batches));
    // Stops the reader however this returns.
    let _reader = AbortOnDrop(reader);
    while let Some(batch) = decoded.recv().await {
        let DecodedBatch { changes, last, count } = batch?;
        let mut connection = Pooled::acquire(pool).await?;
        let mut transaction = connection.begin().await?;
        projector
            .apply(&mut transaction, events, &changes)
            .await
            .map_err(|e| ProjectionError::EventStore(e.to_string()))?;
        feed.save_checkpoint_in(&mut transaction, last).await?;
        transaction.commit().await?;
        done += count;
        folded += count;
        progress(Progress { events: done, total: total.max(done) });
    }
    Ok(folded)
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One batch of the feed, decoded into changes per aggregate.
struct DecodedBatch<A: eventstore::Aggregate> {
    changes: Vec<eventstore::Change<A>>,
    /// The position of its last event.
    last: FeedPosition,
    /// Its events.
    count: u64,
}

/// Reads `feed` after `position` batch by batch and sends each, decoded, to `batches`,
/// until the feed is drained and every transaction below `horizon` has ended; or
/// until the receiver goes away.
async fn read_decoded<A: eventstore::Aggregate>(
    feed: Feed,
    events: Events<A>,
    mut position: FeedPosition,
    horizon: u64,
    batches: tokio::sync::mpsc::Sender<Result<DecodedBatch<A>, ProjectionError>>,
) {
    loop {
        let read = async {
            // Checked before reading: if every transaction below the horizon had
            // ended then, the read that follows sees all they committed.
            let passed = feed.has_passed(horizon).await?;
            let batch = feed.read_after(position, BATCH_SIZE).await?;
            let full = batch.len() as i64 == BATCH_SIZE;
            let (count, last) = (batch.len() as u64, batch.last().map(|e| e.position));
            let changes = changes_of(&events, batch).map_err(|e| ProjectionError::EventStore(e.to_string()))?;
            Ok::<_, ProjectionError>((passed && !full, last.map(|last| DecodedBatch { changes, last, count })))
        };
        let (finished, batch) = match read.await {
            Ok(read) => read,
            Err(error) => {
                let _ = batches.send(Err(error)).await;
                return;
            }
        };
        match batch {
            Some(batch) => {
                position = batch.last;
                if batches.send(Ok(batch)).await.is_err() {
                    return;
                }
            }
            None if !finished => tokio::time::sleep(Duration::from_millis(20)).await,
            None => {}
        }
        if finished {
            return;
        }
    }
}

async fn count_until(pool: &PgPool, position: FeedPosition) -> Result<u64, ProjectionError> {
    let done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE (transaction_id, global_position) <= ($1::text::xid8, $2)",
    )
    .bind(position.transaction_id.to_string())
    .bind(position.global_position)
    .fetch_one(pool)
    .await?;
    Ok(done.max(0) as u64)
}

/// Builds on `to` every index of `from` that `to` lacks (all but the primary key),
/// without blocking the commands that write `to` meanwhile.
async fn copy_secondary_indexes(pool: &PgPool, from: &str, to: &str) -> Result<(), ProjectionError> {
    // An interrupted concurrent build leaves an invalid index: drop it, build again.
    let invalid: Vec<String> = sqlx::query_scalar(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = $1::regclass AND NOT indisvalid",
    )
    .bind(to)
    .fetch_all(pool)
    .await?;
    for index in invalid {
        sqlx::query(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}")).persistent(false).execute(pool).await?;
    }
    let definitions: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
          WHERE i.indrelid = $1::regclass AND NOT i.indisprimary
            AND NOT EXISTS (SELECT 1 FROM pg_index mine WHERE mine.indrelid = $2::regclass AND mine.indkey = i.indkey
                            AND pg_get_expr(mine.indexprs, mine.indrelid) IS NOT DISTINCT FROM pg_get_expr(i.indexprs, i.indrelid)
                            AND mine.indoption = i.indoption)",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    for definition in definitions {
        // "CREATE [UNIQUE] INDEX name ON schema.table USING ..." -> an unnamed index on `to`.
        let (head, rest) = definition
            .split_once(" ON ")
            .ok_or_else(|| ProjectionError::Corrupt(format!("index definition {definition}")))?;
        let using = rest
            .split_once(" USING ")
            .map(|(_, using)| using)
            .ok_or_else(|| ProjectionError::Corrupt(format!("index definition {definition}")))?;
        let unique = if head.starts_with("CREATE UNIQUE") { "UNIQUE " } else { "" };
        let ddl = format!("CREATE {unique}INDEX CONCURRENTLY ON {to} USING {using}");
        sqlx::query(&ddl).persistent(false).execute(pool).await?;
    }
    Ok(())
}

/// Makes `generation` the active one: the model's view reads its table from the
/// commit on. Same columns, so the view keeps its identity and concurrent queries
/// simply wait for the commit.
async fn switch(pool: &PgPool, model: &str, generation: i32) -> Result<(), ProjectionError> {
    let mut connection = Pooled::acquire(pool).await?;
    let mut transaction = connection.begin().await?;
    let building: Option<i32> =
        sqlx::query_scalar("SELECT building_generation FROM read_models WHERE name = $1 FOR UPDATE")
            .bind(model)
            .fetch_one(&mut *transaction)
            .await?;
    if building != Some(generation) {
        return Err(ProjectionError::Corrupt(format!("{model} generation {generation} is no longer being built")));
    }
    let ddl = format!("CREATE OR REPLACE VIEW {model} AS SELECT * FROM {}", table_name(model, generation));
    sqlx::query(&ddl).persistent(false).execute(&mut *transaction).await?;
    sqlx::query(
        "UPDATE read_models SET active_generation = $2, building_generation = NULL, horizon = NULL, switched_at = now() WHERE name = $1",
    )
    .bind(model)
    .bind(generation)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(())
}

/// Folds every event into a scratch table and returns each row that differs from the
/// active table (by key). Nothing that serves is touched. With services running, rows
/// changed during the run may differ; stop them for an exact comparison.
pub async fn verify<T: ViewTable>(
    pool: &PgPool,
    events: &Events<Aggregate<T>>,
    mut progress: impl FnMut(Progress),
) -> Result<Vec<Difference>, ProjectionError> {
    let active = {
        let mut connection = pool.acquire().await?;
        table_name(T::MODEL, generations(&mut connection, T::MODEL).await?.active)
    };
    let scratch = format!("{}_verify", T::MODEL);
    for ddl in [
        format!("DROP TABLE IF EXISTS {scratch}"),
        format!("CREATE TABLE {scratch} (LIKE {active} INCLUDING ALL EXCLUDING INDEXES)"),
        format!("ALTER TABLE {scratch} ADD PRIMARY KEY ({})", T::KEY),
    ] {
        sqlx::query(&ddl).persistent(false).execute(pool).await?;
    }
    let feed = Feed::new(pool.clone(), feed_name(&scratch));
    feed.reset().await?;
    // Whatever committed before now must be folded, even if the feed does not show it
    // yet: the feed holds back behind any transaction still running in the cluster.
    let horizon = feed.next_transaction_id().await?;
    let total = count_events(pool).await?;
    let folded = fold_feed::<T>(pool, events, &feed, &scratch, horizon, total, &mut progress).await;
    let differences = match folded {
        Ok(_) => differences(pool, &active, &scratch, T::KEY).await,
        Err(error) => Err(error),
    };
    sqlx::query(&format!("DROP TABLE IF EXISTS {scratch}")).persistent(false).execute(pool).await?;
    feed.reset().await?;
    differences
}

async fn differences(pool: &PgPool, live: &str, rebuilt: &str, key: &str) -> Result<Vec<Difference>, ProjectionError> {
    let query = format!(
        "SELECT coalesce(l.{key}, r.{key})::text, to_jsonb(l), to_jsonb(r)
           FROM {live} l FULL JOIN {rebuilt} r ON l.{key} = r.{key}
          WHERE to_jsonb(l) IS DISTINCT FROM to_jsonb(r)
          ORDER BY 1"
    );
    let rows: Vec<(String, Option<serde_json::Value>, Option<serde_json::Value>)> =
        sqlx::query_as(&query).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(key, live, rebuilt)| Difference { key, live, rebuilt }).collect())
}
