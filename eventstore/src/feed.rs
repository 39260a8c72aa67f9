//! The commit-ordered feed of all events in a schema, with persisted reader positions.
//!
//! Rows are read in `(transaction_id, global_position)` order, and only from
//! transactions older than every transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`). A transaction still in flight can
//! therefore never commit a row *behind* a position already read: the feed has no
//! gaps, whatever the commit order of concurrent writers. Within one aggregate the
//! order is its sequence order, since each command writes one aggregate in one
//! transaction after the previous one committed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::PgPool;
use sqlx::types::Json;
use sqlx::postgres::PgListener;
use telemetry::FeedReader;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often a follower's lag is measured at most. The count reads the index of the
/// events after the position, so a follower far behind waits longer between two
/// counts: at least ten times what the last one took.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// A place in the feed; readers resume after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition {
    /// The writing transaction.
    pub transaction_id: u64,
    /// The row's global position.
    pub global_position: i64,
}

/// One event as the feed delivers it: the stored columns, untouched.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Where it is in the feed.
    pub position: FeedPosition,
    /// Its unique id.
    pub event_id: Uuid,
    /// `Order`, `Product`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// Its place in the aggregate's stream.
    pub sequence: i64,
    /// The event's name.
    pub event_type: String,
    /// The payload's schema version.
    pub event_version: String,
    /// The payload as stored (tagged with the event name), as JSON text: decoded
    /// only by whoever needs it, into whatever type it needs.
    pub payload: Box<RawValue>,
    /// The metadata as stored.
    pub metadata: HashMap<String, String>,
    /// When the writing transaction began.
    pub recorded_at: DateTime<Utc>,
}

impl FeedEvent {
    /// A metadata field, when present.
    pub fn metadata_field(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Decodes it as an event of `A` (see [`crate::Events::decode_stored`]).
    pub fn decode<A: cqrs_es::Aggregate>(self, events: &crate::Events<A>) -> Result<cqrs_es::EventEnvelope<A>, crate::EventsError> {
        events.decode_stored(self.aggregate_id, self.sequence, self.event_type, self.event_version, &self.payload, self.metadata)
    }

    /// The trace headers the command that wrote it kept (see
    /// [`crate::EventMetadata::trace_headers`]); empty when it kept none.
    pub fn trace_headers(&self) -> Vec<(String, String)> {
        crate::metadata::trace_headers_in(|key| self.metadata_field(key))
    }

    /// The payload without the enum tag postgres-es stores around it.
    pub fn fields(&self) -> Value {
        // The column is jsonb, so the text always parses.
        match serde_json::from_str(self.payload.get()).unwrap_or(Value::Null) {
            Value::Object(mut tagged) if tagged.len() == 1 => tagged.remove(&self.event_type).unwrap_or(Value::Null),
            Value::String(_) => Value::Object(Default::default()),
            other => other,
        }
    }
}

/// A named reader of the feed with its persisted position.
#[derive(Debug, Clone)]
pub struct Feed {
    pool: PgPool,
    name: String,
    lag_reported_as: Option<FeedReader>,
}

type FeedRow = (String, i64, Uuid, String, String, i64, String, String, Json<Box<RawValue>>, Json<HashMap<String, String>>, DateTime<Utc>);

impl Feed {
    /// The reader `name` of the feed in `pool`'s schema.
    pub fn new(pool: PgPool, name: impl Into<String>) -> Self {
        Self { pool, name: name.into(), lag_reported_as: None }
    }

    /// While [`Feed::follow`] runs, reports how many committed events lie after this
    /// reader's position on the lag gauge of `reader`, labelled with the feed's name.
    pub fn reporting_lag_as(mut self, reader: FeedReader) -> Self {
        self.lag_reported_as = Some(reader);
        self
    }

    /// The reader's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where this reader stopped; the start of the feed if it never read.
    pub async fn checkpoint(&self) -> Result<FeedPosition, sqlx::Error> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT transaction_id::text, global_position FROM feed_checkpoints WHERE name = $1")
                .bind(&self.name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(tx, position)| FeedPosition { transaction_id: tx.parse().unwrap_or(0), global_position: position }).unwrap_or_default())
    }

    /// Records that everything up to `position` is done.
    pub async fn save_checkpoint(&self, position: FeedPosition) -> Result<(), sqlx::Error> {
        let mut connection = self.pool.acquire().await?;
        self.save_checkpoint_in(&mut connection, position).await
    }

    /// Records the position on `connection`, so a reader can save it in the same
    /// transaction as what it did with the events.
    pub async fn save_checkpoint_in(&self, connection: &mut sqlx::PgConnection, position: FeedPosition) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO feed_checkpoints (name, transaction_id, global_position) VALUES ($1, $2::text::xid8, $3)
             ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,
                    global_position = EXCLUDED.global_position, updated_at = now()",
        )
        .bind(&self.name)
        .bind(position.transaction_id.to_string())
        .bind(position.global_position)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    /// Forgets the position: the reader starts again from the beginning.
    pub async fn reset(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM feed_checkpoints WHERE name = $1").bind(&self.name).execute(&self.pool).await?;
        Ok(())
    }

    /// The id the next transaction will get: every transaction that gets an id from
    /// now on is above it.
    pub async fn next_transaction_id(&self) -> Result<u64, sqlx::Error> {
        let next: String = sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetch_one(&self.pool).await?;
        Ok(next.parse().unwrap_or(u64::MAX))
    }

    /// Whether every transaction with an id below `horizon` has ended, so that the feed
    /// now shows all the events they committed.
    pub async fn has_passed(&self, horizon: u64) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8")
            .bind(horizon.to_string())
            .fetch_one(&self.pool)
            .await
    }

    /// Up to `limit` committed events after `after`, in feed order.
    pub async fn read_after(&self, after: FeedPosition, limit: i64) -> Result<Vec<FeedEvent>, sqlx::Error> {
        let rows: Vec<FeedRow> = sqlx::query_as(
            // Ordered by the columns themselves: a bare `transaction_id` here would name
            // the text output column, and text order is not transaction order.
            "SELECT e.transaction_id::text AS transaction_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id,
                    e.sequence, e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at
               FROM events e
              WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2)
                AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
              ORDER BY e.transaction_id, e.global_position
              LIMIT $3",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(tx, global_position, event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)| FeedEvent {
                position: FeedPosition { transaction_id: tx.parse().unwrap_or(0), global_position },
                event_id,
                aggregate_type,
                aggregate_id,
                sequence,
                event_type,
                event_version,
                payload: payload.0,
                metadata: metadata.0,
                recorded_at,
            })
            .collect())
    }

    /// How many committed events lie after `after` (the reader's lag).
    pub async fn lag(&self, after: FeedPosition) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)")
            .bind(after.transaction_id.to_string())
            .bind(after.global_position)
            .fetch_one(&self.pool)
            .await
    }

    /// A wake-up source: completes when events were appended, or after `poll`.
    pub async fn waiter(&self, poll: Duration) -> FeedWaiter {
        let listener = match PgListener::connect_with(&self.pool).await {
            Ok(mut listener) => match listener.listen("events_appended").await {
                Ok(()) => Some(listener),
                Err(error) => {
                    tracing::warn!(%error, feed = %self.name, "cannot LISTEN for new events; polling only");
                    None
                }
            },
            Err(error) => {
                tracing::warn!(%error, feed = %self.name, "cannot LISTEN for new events; polling only");
                None
            }
        };
        FeedWaiter { listener, poll }
    }
}

impl Feed {
    /// Hands every committed event, batch by batch in feed order, to `handle`, and
    /// saves the position after each batch `handle` finished; runs until `shutdown`.
    ///
    /// A failed batch is retried from the saved position (with backoff), so `handle`
    /// sees every event at least once and must be idempotent. Only one follower per
    /// feed name and schema runs at a time (a PostgreSQL advisory lock); others wait
    /// and take over when it stops.
    pub async fn follow<F, Fut>(&self, batch_size: i64, shutdown: &CancellationToken, mut handle: F)
    where
        F: FnMut(Vec<FeedEvent>) -> Fut,
        Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    {
        let Some(_leadership) = self.lead(shutdown).await else { return };
        tracing::info!(feed = %self.name, "following the event feed");
        let position = loop {
            match self.checkpoint().await {
                Ok(position) => break position,
                Err(error) => {
                    tracing::warn!(%error, feed = %self.name, "cannot read the feed position; retrying");
                    if sleep_or_cancel(Duration::from_secs(1), shutdown).await {
                        return;
                    }
                }
            }
        };
        let (reached, position_seen) = watch::channel(position);
        tokio::join!(self.follow_from(position, reached, batch_size, shutdown, &mut handle), self.report_lag(position_seen, shutdown));
        tracing::info!(feed = %self.name, "stopped following the event feed");
    }

    /// The follower's loop, from `position`; publishes every position it saved on
    /// `reached`.
    async fn follow_from<F, Fut>(&self, mut position: FeedPosition, reached: watch::Sender<FeedPosition>, batch_size: i64, shutdown: &CancellationToken, handle: &mut F)
    where
        F: FnMut(Vec<FeedEvent>) -> Fut,
        Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    {
        let mut waiter = self.waiter(Duration::from_millis(100)).await;
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let step = async {
                let events = self.read_after(position, batch_size).await?;
                let Some(last) = events.last().map(|e| e.position) else { return Ok(None) };
                let full = events.len() as i64 == batch_size;
                handle(events).await?;
                self.save_checkpoint(last).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Some((last, full)))
            };
            match step.await {
                Ok(Some((last, full))) => {
                    position = last;
                    reached.send_replace(last);
                    failures = 0;
                    if full {
                        continue;
                    }
                }
                Ok(None) => failures = 0,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, feed = %self.name, "a feed batch failed; retrying from the saved position");
                    if sleep_or_cancel(Duration::from_millis(100 * 2u64.pow(failures.min(6))), shutdown).await {
                        break;
                    }
                    continue;
                }
            }
            tokio::select! {
                () = waiter.wait() => {}
                () = shutdown.cancelled() => {}
            }
        }
    }

    /// Reports the lag after the latest position `position` saw, if this reader
    /// reports it, until shutdown. Measured apart from the follower's loop, so that a
    /// follower stuck on a batch (the broker away, say) shows its lag growing.
    async fn report_lag(&self, position: watch::Receiver<FeedPosition>, shutdown: &CancellationToken) {
        let Some(reader) = self.lag_reported_as else { return };
        loop {
            let started = Instant::now();
            let after = *position.borrow();
            match self.lag(after).await {
                Ok(lag) => telemetry::pipeline::record_feed_lag(reader, &self.name, u64::try_from(lag).unwrap_or(0)),
                Err(error) => tracing::debug!(%error, feed = %self.name, "cannot measure the feed lag"),
            }
            if sleep_or_cancel(LAG_INTERVAL.max(started.elapsed() * 10), shutdown).await {
                return;
            }
        }
    }

    /// Waits until this process holds the feed's advisory lock (held by the returned
    /// connection for as long as it lives), or shutdown.
    async fn lead(&self, shutdown: &CancellationToken) -> Option<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        let mut waiting_logged = false;
        loop {
            let attempt = async {
                let mut connection = self.pool.acquire().await?;
                // Advisory locks are database-wide: the schema is part of the key, so
                // the followers of services sharing a database do not exclude each other.
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext(current_schema() || ':feed:' || $1))")
                    .bind(&self.name)
                    .fetch_one(&mut *connection)
                    .await?;
                Ok::<_, sqlx::Error>(locked.then_some(connection))
            };
            match attempt.await {
                Ok(Some(connection)) => return Some(connection),
                Ok(None) if !waiting_logged => {
                    tracing::info!(feed = %self.name, "another instance follows this feed; standing by");
                    waiting_logged = true;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, feed = %self.name, "cannot take the feed lock; retrying"),
            }
            if sleep_or_cancel(Duration::from_secs(1), shutdown).await {
                return None;
            }
        }
    }
}

/// Sleeps for `duration`; true when shutdown came first.
pub async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = shutdown.cancelled() => true,
    }
}

/// Waits for new events: a notification, or the poll interval, whichever comes first.
pub struct FeedWaiter {
    listener: Option<PgListener>,
    poll: Duration,
}

impl FeedWaiter {
    /// Returns when there may be new events to read.
    pub async fn wait(&mut self) {
        match &mut self.listener {
            Some(listener) => {
                let _ = tokio::time::timeout(self.poll, listener.try_recv()).await;
            }
            None => tokio::time::sleep(self.poll).await,
        }
    }
}
