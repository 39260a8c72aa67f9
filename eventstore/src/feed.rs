//! The commit-ordered feed of all events in a schema, with persisted reader positions.
//!
//! Rows are read in `(transaction_id, global_position)` order, and only from
//! transactions older than every transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`). A transaction still in flight can
//! therefore never commit a row *behind* a position already read: the feed has no
//! gaps, whatever the commit order of concurrent writers. Within one aggregate the
//! order is its sequence order, since each command writes one aggregate in one
//! transaction after the previous one committed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

/// A place in the feed; readers resume after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition {
    /// The writing transaction.
    pub transaction_id: u64,
    /// The row's global position.
    pub global_position: i64,
}

/// One event as the feed delivers it: the stored columns, untouched.
#[derive(Debug, Clone, PartialEq)]
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
    /// The payload as stored (tagged with the event name).
    pub payload: Value,
    /// The metadata as stored.
    pub metadata: Value,
    /// When the writing transaction began.
    pub recorded_at: DateTime<Utc>,
}

impl FeedEvent {
    /// A metadata field, when present.
    pub fn metadata_field(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    /// The payload without the enum tag postgres-es stores around it.
    pub fn fields(&self) -> Value {
        match &self.payload {
            Value::Object(tagged) if tagged.len() == 1 => tagged.get(&self.event_type).cloned().unwrap_or(Value::Null),
            Value::String(_) => Value::Object(Default::default()),
            other => other.clone(),
        }
    }
}

/// A named reader of the feed with its persisted position.
#[derive(Debug, Clone)]
pub struct Feed {
    pool: PgPool,
    name: String,
}

type FeedRow = (String, i64, Uuid, String, String, i64, String, String, Value, Value, DateTime<Utc>);

impl Feed {
    /// The reader `name` of the feed in `pool`'s schema.
    pub fn new(pool: PgPool, name: impl Into<String>) -> Self {
        Self { pool, name: name.into() }
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
        sqlx::query(
            "INSERT INTO feed_checkpoints (name, transaction_id, global_position) VALUES ($1, $2::text::xid8, $3)
             ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,
                    global_position = EXCLUDED.global_position, updated_at = now()",
        )
        .bind(&self.name)
        .bind(position.transaction_id.to_string())
        .bind(position.global_position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Up to `limit` committed events after `after`, in feed order.
    pub async fn read_after(&self, after: FeedPosition, limit: i64) -> Result<Vec<FeedEvent>, sqlx::Error> {
        let rows: Vec<FeedRow> = sqlx::query_as(
            "SELECT transaction_id::text, global_position, event_id, aggregate_type, aggregate_id, sequence,
                    event_type, event_version, payload, metadata, recorded_at
               FROM events
              WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
                AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
              ORDER BY transaction_id, global_position
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
                payload,
                metadata,
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
