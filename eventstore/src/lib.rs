//! The event store both services write through, on the table layout of postgres-es.
//!
//! cqrs-es gives us the aggregate model (commands, events, `handle`/`apply`) and the
//! stored event format; this crate adds what a product needs around it:
//! - [`AggregateStore`]: commands executed one at a time or in batches, each batch
//!   committed in one transaction together with the read model it keeps
//!   ([`Projection`]), with bounded retries on optimistic-lock conflicts and an
//!   in-memory cache of recent aggregates; optionally per-key state kept beside the
//!   events instead of in the aggregate ([`KeyedState`]) and snapshots, so that an
//!   aggregate loads in bounded time and memory whatever its history;
//! - [`Events`]: set-at-a-time reads and appends of stored events, with upcasters;
//! - [`EventMetadata`]: what every event records besides its payload (correlation,
//!   causation, actor, time);
//! - [`Feed`]: the gap-safe, commit-ordered feed of all events that the outbox relay
//!   and projections read, each from its own persisted position, reporting its lag;
//! - [`CommitNotifier`]: wakes feed readers when events commit (without a `NOTIFY`
//!   inside the writing transaction, which would serialize all commits);
//! - [`load_history`]: an aggregate's events with their stored columns, for auditors;
//! - [`AggregateError`]: why a service's operation on an aggregate failed;
//! - [`DeadLetterSource`]: who parked a dead letter, for the services' parking and
//!   the operators' `dlq` alike.
//!
//! It must not depend on `axum`, `rdkafka`, or the read models.

mod aggregate_error;
mod dead_letters;
mod events;
mod feed;
mod history;
mod keyed;
mod metadata;
mod notifier;
mod projection;
mod snapshots;
mod store;

pub use aggregate_error::AggregateError;
pub use dead_letters::DeadLetterSource;
pub use events::{AppendError, EntryRows, Events, EventsError, ViewRows};
pub(crate) use feed::{EVENT_COLUMNS, EventRow};
pub use feed::{Feed, FeedEvent, FeedPage, FeedPosition, sleep_or_cancel};
pub use history::{HistoryPage, StoredEvent, load_event, load_events_at, load_history};
pub use keyed::{Entries, KeyedState};
pub use metadata::{EventMetadata, MetadataError};
pub use notifier::CommitNotifier;
pub use projection::{Change, Projection, ProjectionFailure};
pub use store::{AggregateStore, Command, Committed, ExecuteError};
/// Which lag gauge a feed reader reports on (see [`Feed::reporting_lag_as`]).
pub use telemetry::FeedReader;

/// Stored events and upcasters of cqrs-es.
pub use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster, SerializedEvent};
/// The aggregate model of cqrs-es.
pub use cqrs_es::{Aggregate, DomainEvent, EventEnvelope};
