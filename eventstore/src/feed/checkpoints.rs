//! A reader's saved position: one row per reader name in `feed_checkpoints`.

use sqlx::PgExecutor;

use super::{Feed, FeedPosition};

/// Whether a checkpoint's commit waits for the WAL flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// As the surrounding transaction commits (a reader saving its position with its
    /// own work decides that).
    AsTransaction,
    /// Committed without waiting for the flush: a position lost in a crash only means
    /// events handled again, which every reader must bear anyway.
    Asynchronous,
}

/// A saved position as stored.
#[derive(sqlx::FromRow)]
struct CheckpointRow {
    /// `xid8` as text: sqlx has no type for it.
    transaction_id: String,
    global_position: i64,
}

impl From<CheckpointRow> for FeedPosition {
    fn from(row: CheckpointRow) -> Self {
        Self { transaction_id: row.transaction_id.parse().unwrap_or(0), global_position: row.global_position }
    }
}

impl Feed {
    /// Where this reader stopped; the start of the feed if it never read.
    pub async fn checkpoint(&self) -> Result<FeedPosition, sqlx::Error> {
        self.checkpoint_on(&self.pool).await
    }

    pub(super) async fn checkpoint_on<'c>(&self, executor: impl PgExecutor<'c>) -> Result<FeedPosition, sqlx::Error> {
        let row: Option<CheckpointRow> = sqlx::query_as(
            "SELECT transaction_id::text AS transaction_id, global_position FROM feed_checkpoints WHERE name = $1",
        )
        .bind(&self.name)
        .fetch_optional(executor)
        .await?;
        Ok(row.map(FeedPosition::from).unwrap_or_default())
    }

    /// Records that everything up to `position` is done, committed asynchronously (no
    /// wait for the WAL flush): a position lost in a crash only means events handled
    /// again, which every reader must bear anyway.
    pub async fn save_checkpoint(&self, position: FeedPosition) -> Result<(), sqlx::Error> {
        self.upsert_checkpoint(&self.pool, position, Durability::Asynchronous).await
    }

    /// Records the position on `connection`, so a reader can save it in the same
    /// transaction as what it did with the events.
    pub async fn save_checkpoint_in(
        &self,
        connection: &mut sqlx::PgConnection,
        position: FeedPosition,
    ) -> Result<(), sqlx::Error> {
        self.upsert_checkpoint(&mut *connection, position, Durability::AsTransaction).await
    }

    /// Saves `position` as this reader's. An asynchronous commit is asked for with a
    /// setting local to the statement's transaction, so it cannot leak into the
    /// session's later transactions (a pooled connection's, or a leader's).
    pub(super) async fn upsert_checkpoint<'c>(
        &self,
        executor: impl PgExecutor<'c>,
        position: FeedPosition,
        durability: Durability,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO feed_checkpoints (name, transaction_id, global_position)
             SELECT $1, $2::text::xid8, $3
               FROM (SELECT CASE WHEN $4 THEN set_config('synchronous_commit', 'off', true) END) AS durability
             ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,
                    global_position = EXCLUDED.global_position, updated_at = now()",
        )
        .bind(&self.name)
        .bind(position.transaction_id.to_string())
        .bind(position.global_position)
        .bind(durability == Durability::Asynchronous)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Forgets the position: the reader starts again from the beginning.
    pub async fn reset(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM feed_checkpoints WHERE name = $1").bind(&self.name).execute(&self.pool).await?;
        Ok(())
    }
}
