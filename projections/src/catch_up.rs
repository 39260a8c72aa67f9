//! Projections fed from the commit-ordered event feed, each with its own position:
//! whatever a view missed (it was added later, or rebuilt, or someone wrote events
//! without it) is caught up here, by itself. Applying an event twice changes nothing,
//! so the at-least-once feed is enough.

use eventstore::{Aggregate, Change, Events, EventsError, Feed, FeedEvent, FeedReader, Projection};
use migrations::Pooled;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Events read per feed batch.
const BATCH_SIZE: i64 = 1000;

/// How often the feed is read for what views lack. Commands keep their views in the
/// same transaction as their events, so this is a safety net, not the path by which
/// views are updated: it polls, and commits do not wake it.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The changes to aggregates of type `A` among `batch`, one per aggregate, its events
/// in feed order (which is sequence order).
pub fn changes_of<A: Aggregate>(events: &Events<A>, batch: Vec<FeedEvent>) -> Result<Vec<Change<A>>, EventsError> {
    let mut changes: Vec<Change<A>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for event in batch.into_iter().filter(|e| e.aggregate_type == A::TYPE) {
        let aggregate_id = event.aggregate_id.clone();
        let envelope = event.decode(events)?;
        match index.get(&aggregate_id) {
            Some(&at) => changes[at].events.push(envelope),
            None => {
                index.insert(aggregate_id.clone(), changes.len());
                changes.push(Change { aggregate_id, events: vec![envelope] });
            }
        }
    }
    Ok(changes)
}

/// Keeps `projection` up to date with every event of type `A` committed in `pool`'s
/// schema, reading the feed as `feed_name` from its saved position, until `shutdown`;
/// reports its lag as `projection_lag_events`.
pub async fn follow_feed<A, P>(
    pool: PgPool,
    feed_name: &str,
    events: Events<A>,
    projection: P,
    shutdown: CancellationToken,
) where
    A: Aggregate,
    P: Projection<A>,
{
    let feed = Feed::new(pool.clone(), feed_name).reporting_lag_as(FeedReader::Projection).polling_every(POLL_INTERVAL);
    let (pool, events, projection) = (&pool, &events, &projection);
    feed.follow(BATCH_SIZE, &shutdown, |batch| async move {
        let changes = changes_of(events, batch)?;
        if !changes.is_empty() {
            let mut connection = Pooled::acquire(pool).await?;
            let mut transaction = connection.begin().await?;
            projection.apply(&mut transaction, events, &changes).await?;
            transaction.commit().await?;
        }
        Ok(())
    })
    .await;
}
