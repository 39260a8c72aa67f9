//! Reading the feed: pages of committed events after a position, and how far a reader
//! is behind.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use migrations::Pooled;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, Row};
use uuid::Uuid;

use super::{Feed, FeedEvent, FeedPosition};

/// One page of the feed as [`Feed::read_page`] reads it.
#[derive(Debug, Default)]
pub struct FeedPage {
    /// The events, in feed order.
    pub events: Vec<FeedEvent>,
    /// Whether committed events lie beyond what the page could show, held back by an
    /// older transaction still open: reading again soon will find them.
    pub held_back: bool,
}

/// One row of a page: the held-back flag, on every row, and an event unless the page
/// is empty (then the only row carries the flag alone).
struct PageRow {
    held_back: bool,
    event: Option<EventRow>,
}

impl FromRow<'_, PgRow> for PageRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let event = match row.try_get::<Option<i64>, _>("global_position")? {
            Some(_) => Some(EventRow::from_row(row)?),
            None => None,
        };
        Ok(Self { held_back: row.try_get("held_back")?, event })
    }
}

/// An event's stored columns, as the feed and the history reads select them
/// ([`EVENT_COLUMNS`]).
#[derive(FromRow)]
pub(crate) struct EventRow {
    /// `xid8` as text: sqlx has no type for it.
    transaction_text: String,
    global_position: i64,
    event_id: Uuid,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    #[sqlx(json)]
    payload: Box<RawValue>,
    #[sqlx(json)]
    metadata: HashMap<String, String>,
    recorded_at: DateTime<Utc>,
}

/// The columns of an [`EventRow`], from table `events`.
pub(crate) const EVENT_COLUMNS: &str = "transaction_id::text AS transaction_text, global_position, event_id, \
    aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

impl From<EventRow> for FeedEvent {
    fn from(row: EventRow) -> Self {
        Self {
            position: FeedPosition {
                transaction_id: row.transaction_text.parse().unwrap_or(0),
                global_position: row.global_position,
            },
            event_id: row.event_id,
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            event_type: row.event_type,
            event_version: row.event_version,
            payload: row.payload,
            metadata: row.metadata,
            recorded_at: row.recorded_at,
        }
    }
}

impl Feed {
    /// The id the next transaction will get: every transaction that gets an id from
    /// now on is above it.
    pub async fn next_transaction_id(&self) -> Result<u64, sqlx::Error> {
        let next: String =
            sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetch_one(&self.pool).await?;
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
        Ok(self.read_page(after, limit).await?.events)
    }

    /// Up to `limit` committed events after `after`, in feed order, and whether more
    /// are committed but held back by an older open transaction.
    pub async fn read_page(&self, after: FeedPosition, limit: i64) -> Result<FeedPage, sqlx::Error> {
        read_page_on(&self.pool, after, limit).await
    }

    /// How many committed events lie after `after` (the reader's lag).
    pub async fn lag(&self, after: FeedPosition) -> Result<i64, sqlx::Error> {
        lag_on(&mut Pooled::acquire(&self.pool).await?, after).await
    }

    /// How long ago the first committed event after `after` (in feed order) was
    /// recorded, by the database's clock; `None` when no event lies after it.
    pub async fn oldest_age_after(&self, after: FeedPosition) -> Result<Option<Duration>, sqlx::Error> {
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM clock_timestamp() - recorded_at)::float8 FROM events
              WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
              ORDER BY transaction_id, global_position LIMIT 1",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .fetch_optional(&self.pool)
        .await?;
        Ok(seconds.map(|s| Duration::try_from_secs_f64(s).unwrap_or_default()))
    }

    /// How long ago the first event after this reader's saved position was recorded;
    /// `None` when it has handled everything.
    pub async fn oldest_unhandled_age(&self) -> Result<Option<Duration>, sqlx::Error> {
        self.oldest_age_after(self.checkpoint().await?).await
    }
}

/// [`Feed::read_page`] on `executor` (a follower reads on its leader's connection).
pub(super) async fn read_page_on<'c>(
    executor: impl PgExecutor<'c>,
    after: FeedPosition,
    limit: i64,
) -> Result<FeedPage, sqlx::Error> {
    let rows: Vec<PageRow> = sqlx::query_as(
        // One snapshot for both parts. The outer row always exists, so the flag comes
        // back with an empty page too; its subquery is ordered so that it walks the
        // commit-order index (as an EXISTS it was planned as a table scan). Ordered
        // by the columns themselves: a bare
        // `transaction_id` would name the text output column, and text order is not
        // transaction order.
        "SELECT horizon.held_back, e.transaction_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id,
                e.sequence, e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at
           FROM (SELECT (SELECT transaction_id FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
                          ORDER BY transaction_id LIMIT 1) IS NOT NULL AS held_back) horizon
           LEFT JOIN LATERAL (
                SELECT e.transaction_id::text AS transaction_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id,
                       e.sequence, e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at
                  FROM events e
                 WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2)
                   AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY e.transaction_id, e.global_position
                 LIMIT $3) e ON true",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.global_position)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    let held_back = rows.first().is_some_and(|row| row.held_back);
    let events = rows.into_iter().filter_map(|row| row.event).map(FeedEvent::from).collect();
    Ok(FeedPage { events, held_back })
}

/// How many committed events lie after `after`, counted through the index in commit
/// order, so in time that grows with the lag, not with the store.
pub(super) async fn lag_on(connection: &mut Pooled, after: FeedPosition) -> Result<i64, sqlx::Error> {
    let mut transaction = connection.begin().await?;
    // PostgreSQL keeps no statistics it can range over for xid8: it takes any bound on
    // `transaction_id` for a third of the table and scanned all of it (measured: 184 ms
    // a count over 250,000 events, every few seconds per reader, against 1.3 ms
    // through the index). Only this transaction plans without sequential scans.
    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *transaction).await?;
    let lag = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.global_position)
    .fetch_one(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(lag)
}
