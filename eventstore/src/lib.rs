//! The event store both services write through, on postgres-es.
//!
//! cqrs-es gives us load-and-commit with an optimistic lock per aggregate; this crate
//! adds what a product needs around it: bounded retries on conflicts, the metadata
//! every event carries (correlation, causation, actor, time), and reads of an
//! aggregate's history with the columns our migrations add (event id, commit time),
//! and the gap-safe, commit-ordered feed of all events that the outbox relay and
//! self-healing projections read, each from its own persisted position.
//!
//! It must not depend on `axum`, `rdkafka`, or the read models.

mod feed;
mod history;
mod metadata;
mod store;

pub use feed::{Feed, FeedEvent, FeedPosition, FeedWaiter, sleep_or_cancel};
pub use history::{StoredEvent, load_history};
pub use metadata::{EventMetadata, MetadataError};
pub use store::{AggregateStore, Committed, ExecuteError};

/// The envelope cqrs-es hands out for committed events, and the aggregate trait.
pub use cqrs_es::{Aggregate, EventEnvelope};
