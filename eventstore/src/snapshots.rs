//! Snapshots of aggregates, so that loading one that is not cached reads its latest
//! snapshot and only the events after it, however long its history.
//!
//! Our own table (`aggregate_snapshots`, one row per aggregate), not postgres-es's
//! snapshot path: a snapshot is written by the store in the transaction that appends
//! the events it folds (or after a load that folded many events, from committed events
//! only), so it can never run ahead of the stream, and never over a newer one (a
//! writer that lost a race cannot put an older state back). It is a cache: a
//! snapshot that no longer decodes into the aggregate (its shape changed) is ignored
//! and the aggregate is folded from its events; dropping every snapshot changes nothing
//! but the time of the next loads.

use std::collections::HashMap;

use cqrs_es::Aggregate;
use serde_json::value::RawValue;
use sqlx::PgConnection;
use sqlx::types::Json;

/// One stored snapshot, its state still JSON text.
#[derive(sqlx::FromRow)]
struct SnapshotRow {
    aggregate_id: String,
    version: i64,
    state: Json<Box<RawValue>>,
}

/// When and how the store snapshots aggregates of type `A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshots {
    /// A snapshot is written when a commit brings the aggregate's version to or past a
    /// multiple of this.
    pub every: u64,
    /// The keyed state left out of the snapshotted state ('' when none): a store reads
    /// only snapshots made without what it keeps apart.
    pub without: &'static str,
}

impl Snapshots {
    /// Whether a commit from `before` to `after` crosses a multiple of `every`.
    pub fn due(&self, before: u64, after: u64) -> bool {
        self.every > 0 && before / self.every < after / self.every
    }

    /// The latest usable snapshot of each of `aggregate_ids` that has one, with its
    /// version. One that does not decode is left out (logged): the aggregate is then
    /// folded from its first event.
    pub async fn read<A: Aggregate>(
        &self,
        connection: &mut PgConnection,
        aggregate_ids: &[&str],
    ) -> Result<HashMap<String, (A, u64)>, sqlx::Error> {
        let rows: Vec<SnapshotRow> = sqlx::query_as(
            "SELECT aggregate_id, version, state FROM aggregate_snapshots WHERE aggregate_type = $1 AND aggregate_id = ANY($2) AND without_state = $3",
        )
        .bind(A::TYPE)
        .bind(aggregate_ids)
        .bind(self.without)
        .fetch_all(&mut *connection)
        .await?;
        let mut snapshots = HashMap::with_capacity(rows.len());
        for SnapshotRow { aggregate_id, version, state } in rows {
            match (serde_json::from_str::<A>(state.0.get()), u64::try_from(version)) {
                (Ok(aggregate), Ok(version)) => {
                    snapshots.insert(aggregate_id, (aggregate, version));
                }
                (Err(error), _) => {
                    tracing::info!(aggregate.id = %aggregate_id, version, %error, "snapshot ignored: it does not decode; folding from the first event")
                }
                (_, Err(_)) => {
                    tracing::info!(aggregate.id = %aggregate_id, version, "snapshot ignored: negative version")
                }
            }
        }
        Ok(snapshots)
    }

    /// Stores `aggregate` at `version` as the snapshot of `aggregate_id`, unless a newer
    /// one is stored already. One of the same version is replaced: both fold the same
    /// committed events, and the stored one may be one that no longer decodes.
    pub async fn write<A: Aggregate>(
        &self,
        connection: &mut PgConnection,
        aggregate_id: &str,
        aggregate: &A,
        version: u64,
    ) -> Result<(), crate::EventsError> {
        let state = serde_json::to_value(aggregate)?;
        sqlx::query(
            "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, version, without_state, state) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                SET version = EXCLUDED.version, without_state = EXCLUDED.without_state, state = EXCLUDED.state, taken_at = now()
              WHERE aggregate_snapshots.version <= EXCLUDED.version",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .bind(self.without)
        .bind(state)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}
