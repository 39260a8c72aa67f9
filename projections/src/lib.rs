//! Read models: the order view (OMS) and the product view (inventory), in PostgreSQL.
//!
//! A view is a pure fold of its aggregate's events (`*View::apply`): it reads no clock
//! and no other table, so dropping and rebuilding it from the event store gives the
//! same rows. Writes are guarded by version: a view only moves forward, so applying an
//! event twice, or two writers racing, changes nothing. When a view is behind by more
//! than the events at hand (a crash between commit and view update), it is refolded
//! from the aggregate's whole history: it heals itself on the next write.
//!
//! Must not depend on `axum` or `rdkafka`.

mod orders;
mod page;
mod products;

pub use orders::{OrderFilter, OrderItemView, OrderView, OrderViews};
pub use page::{Cursor, InvalidCursor, Page};
pub use products::{ProductView, ProductViews};

/// The last version of each aggregate of `aggregate_type` among `events`, so a
/// follower of the feed catches each view up once per batch.
pub fn latest_versions(events: &[eventstore::FeedEvent], aggregate_type: &str) -> Vec<(String, u64)> {
    let mut latest: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for event in events.iter().filter(|e| e.aggregate_type == aggregate_type) {
        let version = latest.entry(event.aggregate_id.as_str()).or_default();
        *version = (*version).max(event.sequence as u64);
    }
    latest.into_iter().map(|(id, version)| (id.to_owned(), version)).collect()
}

/// Why a view could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The database failed.
    #[error("read model database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row or event could not be read back.
    #[error("read model data error: {0}")]
    Corrupt(String),
    /// The event store failed while refolding history.
    #[error("event store error while refolding a view: {0}")]
    EventStore(String),
}
