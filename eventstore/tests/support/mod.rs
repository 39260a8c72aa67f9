//! What the event store's integration tests share: writing an event the way a writer
//! does, without an aggregate behind it.

/// Appends an event of order `aggregate_id` in a transaction of its own (or in the one
/// `connection` holds), as writers do.
pub async fn append<'c>(connection: impl sqlx::PgExecutor<'c>, aggregate_id: &str) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Order', $1, 1, 'OrderCanceled', '1.0', '{}', '{}')",
    )
    .bind(aggregate_id)
    .execute(connection)
    .await
    .expect("append");
}
