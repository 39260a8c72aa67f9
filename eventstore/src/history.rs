//! An aggregate's history as auditors read it, with the columns postgres-es does not
//! know about.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// One stored event, as the `/events` endpoints show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// Position in the aggregate's stream, from 1.
    pub sequence: i64,
    /// The event's name, e.g. `OrderPlaced`.
    pub event_type: String,
    /// The payload's schema version.
    pub event_version: String,
    /// Unique id of this event.
    pub event_id: Uuid,
    /// When the command that produced it was accepted.
    pub occurred_at: Option<String>,
    /// When the writing transaction began (commit-time order).
    pub recorded_at: DateTime<Utc>,
    /// Shared by everything that follows from one customer request.
    pub correlation_id: Option<String>,
    /// What directly caused it.
    pub causation_id: Option<String>,
    /// Who issued the command.
    pub actor: Option<String>,
    /// The event's fields (without the enum tag postgres-es stores around them).
    pub payload: Value,
}

/// An event as `load_history` reads it: sequence, type, version, id, recorded at,
/// metadata, payload.
type HistoryRow = (i64, String, String, Uuid, DateTime<Utc>, Value, Value);

/// Every event of one aggregate, oldest first. Empty when it has none.
pub async fn load_history(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT sequence, event_type, event_version, event_id, recorded_at, metadata, payload
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2
          ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sequence, event_type, event_version, event_id, recorded_at, metadata, payload)| {
            let field = |key: &str| metadata.get(key).and_then(Value::as_str).map(str::to_owned);
            let payload = match payload {
                Value::Object(mut tagged) if tagged.len() == 1 => tagged.remove(&event_type).unwrap_or(Value::Null),
                // Unit variants are stored as a bare string: no fields.
                Value::String(_) => Value::Object(Default::default()),
                other => other,
            };
            StoredEvent {
                sequence,
                occurred_at: field("occurred_at"),
                correlation_id: field("correlation_id"),
                causation_id: field("causation_id"),
                actor: field("actor"),
                event_type,
                event_version,
                event_id,
                recorded_at,
                payload,
            }
        })
        .collect())
}

/// An event as `load_events_at` reads it (the feed's columns).
type EventAtRow = (
    String,
    i64,
    Uuid,
    String,
    String,
    i64,
    String,
    String,
    sqlx::types::Json<Box<serde_json::value::RawValue>>,
    sqlx::types::Json<std::collections::HashMap<String, String>>,
    DateTime<Utc>,
);

/// The events of one aggregate at `sequences`, oldest first, with their stored columns
/// exactly as the feed delivers them: for republishing one event as the relay did
/// (re-requests, re-announcements) without reading the aggregate's whole history.
pub async fn load_events_at(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    sequences: &[i64],
) -> Result<Vec<crate::FeedEvent>, sqlx::Error> {
    let rows: Vec<EventAtRow> = sqlx::query_as(
        "SELECT transaction_id::text, global_position, event_id, aggregate_type, aggregate_id, sequence, event_type, event_version,
                payload, metadata, recorded_at
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = ANY($3)
          ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequences)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(feed_event).collect())
}

/// The stored event `event_id` exactly as the feed delivers it; `None` when there is
/// none (for re-driving an event the relay parked by its id).
pub async fn load_event(pool: &PgPool, event_id: Uuid) -> Result<Option<crate::FeedEvent>, sqlx::Error> {
    let row: Option<EventAtRow> = sqlx::query_as(
        "SELECT transaction_id::text, global_position, event_id, aggregate_type, aggregate_id, sequence, event_type, event_version,
                payload, metadata, recorded_at
           FROM events
          WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(feed_event))
}

fn feed_event(
    (
        tx,
        global_position,
        event_id,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        event_version,
        payload,
        metadata,
        recorded_at,
    ): EventAtRow,
) -> crate::FeedEvent {
    crate::FeedEvent {
        position: crate::FeedPosition { transaction_id: tx.parse().unwrap_or(0), global_position },
        event_id,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        event_version,
        payload: payload.0,
        metadata: metadata.0,
        recorded_at,
    }
}
