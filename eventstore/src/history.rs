//! An aggregate's history as auditors read it, with the columns postgres-es does not
//! know about.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{EVENT_COLUMNS, EventRow};

/// One stored event with its metadata: the one shape in which events leave the store
/// for people and tools (the `/events` answers, `history --json`, each line of
/// `export` with the aggregate beside it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = HistoryEvent, example = json!({
    "sequence": 1, "eventType": "OrderPlaced", "eventVersion": "1.0",
    "eventId": "0b9f5c1e-8a51-4c1a-9d3e-2f1d0c7b6a55", "occurredAt": "2026-12-01T17:00:00.000000Z",
    "recordedAt": "2026-12-01T17:00:00.001234Z", "correlationId": "checkout-42",
    "causationId": "5f0c9e3a-1b2d-4e6f-8a7b-9c0d1e2f3a4b", "actor": "oms-http",
    "payload": {"userId": "u-1", "items": [{"productId": "mug", "quantity": 2}]}
})))]
pub struct StoredEvent {
    /// Position in the aggregate's stream, from 1.
    pub sequence: i64,
    /// The event's name, e.g. `OrderPlaced`.
    pub event_type: String,
    /// The payload's schema version.
    pub event_version: String,
    /// Unique id of this event.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "uuid"))]
    pub event_id: Uuid,
    /// When the command that produced it was accepted (RFC 3339).
    pub occurred_at: Option<String>,
    /// When the writing transaction began (commit-time order).
    pub recorded_at: DateTime<Utc>,
    /// Shared by everything that follows from one customer request.
    pub correlation_id: Option<String>,
    /// What directly caused it: the request id, or the id of the event it answers.
    pub causation_id: Option<String>,
    /// Who issued the command (`oms-http`, `inventory-saga`, ...).
    pub actor: Option<String>,
    /// The event's fields (without the enum tag postgres-es stores around them).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
}

impl From<&crate::FeedEvent> for StoredEvent {
    fn from(event: &crate::FeedEvent) -> Self {
        let field = |key: &str| event.metadata_field(key).map(str::to_owned);
        Self {
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            event_id: event.event_id,
            occurred_at: field("occurred_at"),
            recorded_at: event.recorded_at,
            correlation_id: field("correlation_id"),
            causation_id: field("causation_id"),
            actor: field("actor"),
            payload: event.fields(),
        }
    }
}

/// A page of one aggregate's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// Its events, oldest first.
    pub events: Vec<StoredEvent>,
    /// The sequence the next page starts at; `None` on the last page.
    pub next_from: Option<i64>,
}

/// At most `limit` events of one aggregate from sequence `from` on, oldest first,
/// and where the next page starts; `None` when the aggregate has no events at all.
pub async fn load_history(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    from: i64,
    limit: i64,
) -> Result<Option<HistoryPage>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence >= $3
          ORDER BY sequence LIMIT $4"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(from)
    .bind(limit.saturating_add(1))
    .fetch_all(pool)
    .await?;
    let mut events: Vec<StoredEvent> =
        rows.into_iter().map(|row| StoredEvent::from(&crate::FeedEvent::from(row))).collect();
    let more = events.len() as i64 > limit;
    events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    if events.is_empty() {
        // Past the end of a history, or no history at all.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2)")
                .bind(aggregate_type)
                .bind(aggregate_id)
                .fetch_one(pool)
                .await?;
        return Ok(exists.then_some(HistoryPage { events, next_from: None }));
    }
    let next_from = events.last().filter(|_| more).map(|last| last.sequence + 1);
    Ok(Some(HistoryPage { events, next_from }))
}

/// The events of one aggregate at `sequences`, oldest first, with their stored columns
/// exactly as the feed delivers them: for republishing one event as the relay did
/// (re-requests, re-announcements) without reading the aggregate's whole history.
pub async fn load_events_at(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    sequences: &[i64],
) -> Result<Vec<crate::FeedEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = ANY($3) ORDER BY sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequences)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(crate::FeedEvent::from).collect())
}

/// The stored event `event_id` exactly as the feed delivers it; `None` when there is
/// none (for re-driving an event the relay parked by its id).
pub async fn load_event(pool: &PgPool, event_id: Uuid) -> Result<Option<crate::FeedEvent>, sqlx::Error> {
    let row: Option<EventRow> = sqlx::query_as(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1"))
        .bind(event_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(crate::FeedEvent::from))
}
