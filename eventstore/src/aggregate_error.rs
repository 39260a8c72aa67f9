//! Why a service's operation on one of its aggregates failed: the one error type of
//! both services' application layer (`Orders`, `Products`), which their HTTP layers
//! map to statuses. Messages name the aggregate by its type in lower case (`Order`:
//! "order"), since clients read them.

use cqrs_es::Aggregate;

use crate::ExecuteError;

/// Why an operation on an aggregate of type `A` failed.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError<A: Aggregate>
where
    A::Error: 'static,
{
    /// A business rule refused the command.
    #[error(transparent)]
    Rejected(A::Error),
    /// Concurrent writers kept winning; the client may retry.
    #[error("the {} kept changing concurrently", noun::<A>())]
    Conflict,
    /// No such aggregate.
    #[error("{} not found", noun::<A>())]
    NotFound,
    /// The `Idempotency-Key` was used on this aggregate for another request.
    #[error("Idempotency-Key: used on this {} for another request", noun::<A>())]
    KeyReused,
    /// The aggregate moved on from the version the writer named in `If-Match`:
    /// nothing was stored.
    #[error("the {} is at version {current}, not the one in If-Match; read it again", noun::<A>())]
    Stale {
        /// Its version now.
        current: u64,
    },
    /// The database failed; the cause is kept as the source, so callers can tell a
    /// transient failure from a permanent one.
    #[error("storage failure: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How messages name an aggregate of type `A`.
fn noun<A: Aggregate>() -> String {
    A::TYPE.to_lowercase()
}

impl<A: Aggregate> From<ExecuteError<A::Error>> for AggregateError<A>
where
    A::Error: 'static,
{
    fn from(error: ExecuteError<A::Error>) -> Self {
        match error {
            ExecuteError::Rejected(e) => Self::Rejected(e),
            // Duplicate: only a write with an idempotency key can be one, and the
            // service answers those itself (with what that key applied).
            ExecuteError::Conflict | ExecuteError::Duplicate => Self::Conflict,
            ExecuteError::Store(e) => Self::Storage(e),
            // `If-Match` named a version of an aggregate that has none.
            ExecuteError::Stale { current: 0 } => Self::NotFound,
            ExecuteError::Stale { current } => Self::Stale { current },
        }
    }
}
