//! What the event store's integration tests share: writing an event the way a writer
//! does, without an aggregate behind it, and waiting for a follower's saved position.

use std::time::Duration;

use eventstore::{Feed, FeedPosition};

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

/// Whether the position saved for feed `feed` comes to satisfy `saved` within `limit`
/// (read every 10 ms).
pub async fn saved_within(
    pool: &sqlx::PgPool,
    feed: &str,
    limit: Duration,
    saved: impl Fn(FeedPosition) -> bool,
) -> bool {
    let feed = Feed::new(pool.clone(), feed);
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if saved(feed.checkpoint().await.expect("checkpoint")) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
