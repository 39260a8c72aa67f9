//! The event store both services write through, on postgres-es.
//!
//! cqrs-es gives us load-and-commit with an optimistic lock per aggregate; this crate
//! adds what a product needs around it: bounded retries on conflicts, the metadata
//! every event carries (correlation, causation, actor, time), and reads of an
//! aggregate's history with the columns our migrations add (event id, commit time).
//!
//! It must not depend on `axum`, `rdkafka`, or the read models.

mod history;
mod metadata;
mod store;

pub use history::{StoredEvent, load_history};
pub use metadata::{EventMetadata, MetadataError};
pub use store::{AggregateStore, Committed, ExecuteError};

/// The envelope cqrs-es hands out for committed events.
pub use cqrs_es::EventEnvelope;
