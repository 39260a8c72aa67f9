//! Reading and writing one aggregate type's rows of the `events` table: the stored
//! form is the one postgres-es uses (payload = the serialized event enum, metadata =
//! a JSON object of strings), so the table stays readable by cqrs-es tooling.
//!
//! Everything here works on sets of aggregates with one statement, so a batch of
//! commands costs one read and one write however many aggregates it touches.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::persist::{EventUpcaster, PersistenceError, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope};
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

/// Why stored events could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The database failed.
    #[error("event store database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored event does not decode into the current event types (after upcasting).
    #[error("event {aggregate_id}#{sequence} does not decode: {source}")]
    Undecodable {
        /// Its aggregate.
        aggregate_id: String,
        /// Its sequence.
        sequence: usize,
        /// Why.
        source: PersistenceError,
    },
    /// An event does not encode.
    #[error("event does not encode: {0}")]
    Unencodable(#[from] serde_json::Error),
}

/// The `events` rows of aggregate type `A`, with the upcasters that bring old event
/// versions to the current ones.
pub struct Events<A: Aggregate> {
    upcasters: Arc<[Box<dyn EventUpcaster>]>,
    _aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<A: Aggregate> Clone for Events<A> {
    fn clone(&self) -> Self {
        Self { upcasters: self.upcasters.clone(), _aggregate: std::marker::PhantomData }
    }
}

impl<A: Aggregate> Default for Events<A> {
    fn default() -> Self {
        Self::with_upcasters(Vec::new())
    }
}

type EventRow = (String, i64, String, String, Json<Box<RawValue>>, Json<HashMap<String, String>>);

impl<A: Aggregate> Events<A> {
    /// Events decoded through `upcasters` (applied in order to every matching event).
    pub fn with_upcasters(upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self { upcasters: upcasters.into(), _aggregate: std::marker::PhantomData }
    }

    /// Decodes one stored event, upcasting it first.
    pub fn decode(&self, stored: SerializedEvent) -> Result<EventEnvelope<A>, EventsError> {
        let stored = self.upcasters.iter().fold(stored, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) { upcaster.upcast(event) } else { event }
        });
        let (aggregate_id, sequence) = (stored.aggregate_id.clone(), stored.sequence);
        EventEnvelope::try_from(stored).map_err(|source| EventsError::Undecodable { aggregate_id, sequence, source })
    }

    /// Decodes one event from its stored columns. When an upcaster applies, through
    /// [`Self::decode`]; otherwise straight from the payload's JSON text into the event
    /// type, with no `Value` in between (loads, catch-ups and rebuilds decode every
    /// event they read, and building `Value`s was most of that work).
    pub fn decode_stored(
        &self,
        aggregate_id: String,
        sequence: i64,
        event_type: String,
        event_version: String,
        payload: &RawValue,
        metadata: HashMap<String, String>,
    ) -> Result<EventEnvelope<A>, EventsError> {
        let sequence = usize::try_from(sequence).unwrap_or_default();
        if self.upcasters.iter().any(|upcaster| upcaster.can_upcast(&event_type, &event_version)) {
            let (payload, metadata) = (serde_json::from_str(payload.get())?, serde_json::to_value(metadata)?);
            return self.decode(SerializedEvent::new(
                aggregate_id,
                sequence,
                A::TYPE.to_owned(),
                event_type,
                event_version,
                payload,
                metadata,
            ));
        }
        match serde_json::from_str(payload.get()) {
            Ok(payload) => Ok(EventEnvelope { aggregate_id, sequence, payload, metadata }),
            Err(error) => Err(EventsError::Undecodable {
                aggregate_id,
                sequence,
                source: PersistenceError::DeserializationError(Box::new(error)),
            }),
        }
    }

    fn decode_row(
        &self,
        (aggregate_id, sequence, event_type, event_version, payload, metadata): EventRow,
    ) -> Result<EventEnvelope<A>, EventsError> {
        self.decode_stored(aggregate_id, sequence, event_type, event_version, &payload.0, metadata.0)
    }

    /// The events of each `(aggregate id, after)` pair with a sequence above `after`,
    /// grouped by aggregate, oldest first.
    pub async fn read_after(
        &self,
        connection: &mut PgConnection,
        positions: &[(&str, u64)],
    ) -> Result<HashMap<String, Vec<EventEnvelope<A>>>, EventsError> {
        self.read_page_after(connection, positions, None).await
    }

    /// Like [`Events::read_after`], at most `limit` events per aggregate (all when `None`):
    /// the next page starts after the last one read.
    pub async fn read_page_after(
        &self,
        connection: &mut PgConnection,
        positions: &[(&str, u64)],
        limit: Option<i64>,
    ) -> Result<HashMap<String, Vec<EventEnvelope<A>>>, EventsError> {
        let ids: Vec<&str> = positions.iter().map(|(id, _)| *id).collect();
        let after: Vec<i64> = positions.iter().map(|(_, after)| i64::try_from(*after).unwrap_or(i64::MAX)).collect();
        let rows: Vec<EventRow> = sqlx::query_as(
            // LATERAL: one primary-key range scan per aggregate, whatever the planner
            // guesses about the array (a hash join would read every event of the type).
            "SELECT e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload, e.metadata
               FROM unnest($2::text[], $3::bigint[]) AS wanted (aggregate_id, after)
              CROSS JOIN LATERAL (
                    SELECT aggregate_id, sequence, event_type, event_version, payload, metadata
                      FROM events
                     WHERE aggregate_type = $1 AND aggregate_id = wanted.aggregate_id AND sequence > wanted.after
                     ORDER BY sequence
                     LIMIT $4) e",
        )
        .bind(A::TYPE)
        .bind(&ids)
        .bind(&after)
        .bind(limit)
        .fetch_all(&mut *connection)
        .await?;
        let mut grouped: HashMap<String, Vec<EventEnvelope<A>>> = HashMap::new();
        for row in rows {
            let envelope = self.decode_row(row)?;
            grouped.entry(envelope.aggregate_id.clone()).or_default().push(envelope);
        }
        Ok(grouped)
    }

    /// Every event of one aggregate, oldest first.
    pub async fn read_all(
        &self,
        connection: &mut PgConnection,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, EventsError> {
        Ok(self.read_after(connection, &[(aggregate_id, 0)]).await?.remove(aggregate_id).unwrap_or_default())
    }

    /// Appends `events` (of any aggregates of type `A`) in one statement, in the order
    /// given (the global positions follow it). A sequence already taken (another writer
    /// committed first) is [`AppendError::Conflict`].
    pub async fn append<'a, 'c>(
        &self,
        connection: impl PgExecutor<'c>,
        events: impl IntoIterator<Item = &'a EventEnvelope<A>>,
    ) -> Result<(), AppendError>
    where
        A: 'a,
    {
        self.append_with_rows(connection, events, None, None).await
    }

    /// Like [`Events::append`], and in the same statement writes `entries` (see
    /// [`EntryRows`]) and `rows` into every live table of their read model, each
    /// unless a newer row is stored (see [`ViewRows`]): on a pool, the whole commit is
    /// one round trip.
    pub async fn append_with_rows<'a, 'c>(
        &self,
        connection: impl PgExecutor<'c>,
        events: impl IntoIterator<Item = &'a EventEnvelope<A>>,
        rows: Option<&ViewRows>,
        entries: Option<&EntryRows>,
    ) -> Result<(), AppendError>
    where
        A: 'a,
    {
        let (mut ids, mut sequences, mut types, mut versions, mut payloads, mut metadata) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for event in events {
            ids.push(event.aggregate_id.as_str());
            sequences.push(i64::try_from(event.sequence).unwrap_or(i64::MAX));
            types.push(event.payload.event_type());
            versions.push(event.payload.event_version());
            payloads.push(serde_json::to_value(&event.payload).map_err(EventsError::from)?);
            metadata.push(serde_json::to_value(&event.metadata).map_err(EventsError::from)?);
        }
        // `append_events` (migrations 0006, 0012, 0013) inserts the events in the order
        // given, then the entries, then the rows. Without either, the call any
        // release's schema takes.
        let sql = match (rows, entries) {
            (None, None) => "SELECT append_events($1, $2, $3, $4, $5, $6, $7)",
            (Some(_), None) => "SELECT append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            (_, Some(_)) => "SELECT append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        };
        let mut query = sqlx::query(sql)
            .bind(A::TYPE)
            .bind(&ids)
            .bind(&sequences)
            .bind(&types)
            .bind(&versions)
            .bind(&payloads)
            .bind(&metadata);
        if rows.is_some() || entries.is_some() {
            query = query
                .bind(rows.map(|rows| rows.model))
                .bind(rows.map(|rows| Json(&rows.rows)))
                .bind(rows.and_then(|rows| rows.key));
        }
        if let Some(entries) = entries {
            query = query.bind(entries.table).bind(Json(&entries.rows)).bind(entries.key);
        }
        let appended = query.execute(connection).await;
        match appended {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(error)) if error.constraint() == Some(crate::metadata::IDEMPOTENCY_INDEX) => {
                Err(AppendError::Duplicate)
            }
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Err(AppendError::Conflict),
            Err(error) => Err(AppendError::Events(error.into())),
        }
    }
}

/// Read-model rows of the aggregates whose events they are appended with, as they
/// stand after those events: JSON objects keyed by column name (see
/// [`crate::Projection::rows_of`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRows {
    /// The read model (its SQL view's name; its tables are `<model>_v<generation>`).
    pub model: &'static str,
    /// Its primary-key column, when a row may replace a stored one (some row is of an
    /// aggregate that has one); its tables must then also have a `version` column: a
    /// row replaces the stored one only when its version is higher. `None` inserts the
    /// rows (all of new aggregates), which costs PostgreSQL less.
    pub key: Option<&'static str>,
    /// A JSON array of rows, sorted by key (the order every writer locks rows in).
    pub rows: serde_json::Value,
}

/// Keyed entries of the aggregates whose events they are appended with, as those
/// events leave them (see [`crate::KeyedState`]): each replaces the stored row of its
/// key.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRows {
    /// Their table.
    pub table: &'static str,
    /// Its primary-key columns.
    pub key: &'static [&'static str],
    /// A JSON array of rows, sorted by key (the order every writer locks rows in).
    pub rows: serde_json::Value,
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer took one of the sequences first.
    #[error("another writer appended to the same aggregate first")]
    Conflict,
    /// An event of the same kind with the same idempotency key is stored already.
    #[error("an event with this idempotency key is stored already")]
    Duplicate,
    /// Storage failed.
    #[error(transparent)]
    Events(#[from] EventsError),
}
