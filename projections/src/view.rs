//! What every view table shares: rows folded from one aggregate's events, brought up
//! to date set-at-a-time and only ever moved forward.

use std::collections::HashMap;

use eventstore::{Aggregate, Change, EventEnvelope, Events};
use sqlx::PgConnection;

use crate::ProjectionError;

/// A read-model row folded from the events of one aggregate.
pub trait View: Sized + Send + Clone {
    /// The aggregate whose events it folds.
    type Aggregate: Aggregate;

    /// The sequence of the last event folded in.
    fn version(&self) -> u64;

    /// Folds one event onto the view (`None` before the aggregate's first event). Uses
    /// nothing but the event, so a rebuild reproduces the row exactly.
    fn apply(view: Option<Self>, event: &EventEnvelope<Self::Aggregate>) -> Result<Option<Self>, ProjectionError>;

    /// Folds a whole history, as a rebuild does.
    fn fold<'a>(
        events: impl IntoIterator<Item = &'a EventEnvelope<Self::Aggregate>>,
    ) -> Result<Option<Self>, ProjectionError>
    where
        Self::Aggregate: 'a,
    {
        events.into_iter().try_fold(None, Self::apply)
    }
}

/// The views of `changes` after their new events, given the `current` rows (keyed by
/// aggregate id). Events a row already holds are skipped, so applying a change twice
/// changes nothing; a row found behind the first new event (it missed some) is
/// refolded from the aggregate's whole history, read on `connection`. Aggregates
/// whose view does not move are left out.
pub(crate) async fn advance<V: View>(
    connection: &mut PgConnection,
    events: &Events<V::Aggregate>,
    changes: &[&Change<V::Aggregate>],
    mut current: HashMap<String, V>,
) -> Result<Vec<V>, ProjectionError> {
    let mut advanced = Vec::with_capacity(changes.len());
    for change in changes {
        let view = current.remove(&change.aggregate_id);
        let held = view.as_ref().map_or(0, View::version);
        let Some(first) = change.events.iter().position(|e| e.sequence as u64 > held) else { continue };
        let new = &change.events[first..];
        let next = if new[0].sequence as u64 == held + 1 {
            let mut view = view;
            for event in new {
                view = V::apply(view, event)?;
            }
            view
        } else {
            let history = events
                .read_all(connection, &change.aggregate_id)
                .await
                .map_err(|e| ProjectionError::EventStore(e.to_string()))?;
            V::fold(&history)?
        };
        advanced.extend(next);
    }
    Ok(advanced)
}

/// The ids of `changes` whose current row must be read first: a change starting at
/// the aggregate's first event needs none.
pub(crate) fn ids_to_read<'a, A: Aggregate>(changes: &[&'a Change<A>]) -> Vec<&'a str> {
    changes
        .iter()
        .filter(|c| c.events.first().is_some_and(|e| e.sequence > 1))
        .map(|c| c.aggregate_id.as_str())
        .collect()
}
