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

mod as_of;
pub mod catch_up;
mod coalesce;
pub mod model;
mod orders;
mod page;
mod products;
pub mod rebuild;
mod view;

pub use as_of::{AsOf, view_as_of};
pub use coalesce::CoalescedReads;
pub use model::{Projector, ViewTable};
pub use orders::{OrderFilter, OrderItemView, OrderView, OrderViews};
pub use page::{Cursor, InvalidCursor, Page};
pub use products::{ProductView, ProductViews};
pub use view::View;

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
    /// A read coalesced with others failed; each of them has the same cause.
    #[error(transparent)]
    Shared(std::sync::Arc<ProjectionError>),
}

/// A view that failed is the service's storage failing.
impl<A: eventstore::Aggregate> From<ProjectionError> for eventstore::AggregateError<A> {
    fn from(error: ProjectionError) -> Self {
        Self::Storage(Box::new(error))
    }
}
