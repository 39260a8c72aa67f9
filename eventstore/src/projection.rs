//! Read models written in the same transaction as the events they fold.

use async_trait::async_trait;
use cqrs_es::{Aggregate, EventEnvelope};
use sqlx::PgConnection;

use crate::{Events, ViewRows};

/// What a failed projection reports; the whole transaction is rolled back.
pub type ProjectionFailure = Box<dyn std::error::Error + Send + Sync>;

/// New events of one aggregate, oldest first, contiguous.
#[derive(Debug)]
pub struct Change<A: Aggregate> {
    /// The aggregate.
    pub aggregate_id: String,
    /// Its new events.
    pub events: Vec<EventEnvelope<A>>,
}

/// A read model of aggregate type `A`, brought up to date with new events inside the
/// transaction that appends them, so the model can never be behind a commit nor show
/// an event that was not committed.
///
/// The same projection also replays history (rebuilds, catch-up from the event feed),
/// so `apply` must be idempotent: events at or below what the model already holds
/// change nothing, and a model found behind the first new event is refolded from the
/// aggregate's whole history (read through `events` on the same connection).
#[async_trait]
pub trait Projection<A: Aggregate>: Send + Sync {
    /// Folds `changes` into the model, using only `connection`.
    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &Events<A>,
        changes: &[Change<A>],
    ) -> Result<(), ProjectionFailure>;

    /// The model's rows of `changes` after their events, computed without reading
    /// anything (a change that creates its aggregate, or one whose committed row this
    /// projection remembers), so that they are written in the statement that appends
    /// the events. `None` when this projection cannot tell them all, or does not write
    /// the live model: [`Projection::apply`] does it then, in a transaction.
    fn rows_of(&self, _changes: &[Change<A>]) -> Result<Option<ViewRows>, ProjectionFailure> {
        Ok(None)
    }

    /// `changes` are committed, through [`Projection::rows_of`] or
    /// [`Projection::apply`]: a projection that remembers rows moves them forward.
    /// Not called when a commit fails or its outcome is unknown.
    fn committed(&self, _changes: &[Change<A>]) {}
}
