//! Per-key state of an aggregate kept in a table beside its events instead of in the
//! aggregate's memory: what keeps an aggregate that serves an unbounded number of keys
//! (a product and the orders it served) small, whatever its history.
//!
//! The store folds and caches the aggregate without its keyed entries; before a batch
//! decides, it reads the entries of the keys the batch's commands read and puts them
//! into the aggregates; after the batch's events are appended, it writes the entries
//! those events changed, as the aggregates then hold them, in the same transaction.
//! Every write of an entry comes with an append to its aggregate's stream, so the
//! optimistic version check on the stream catches a concurrent writer of the entries
//! too (the entries are read after the events: entries newer than the folded events
//! can only mean a conflict on append).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::projection::{Change, ProjectionFailure};
use crate::store::Command;

/// Stored entries as [`KeyedState::read`] gives them: (aggregate id, key, entry).
pub type Entries<K, E> = Vec<(String, K, E)>;

/// An aggregate's per-key state and where it is stored. The rule it must keep: the
/// aggregate decides a command and folds its events exactly as the full fold would,
/// as long as it holds the entries of the keys [`KeyedState::keys_read`] names, and
/// folding an event changes only the entries of [`KeyedState::keys_changed`].
pub trait KeyedState<A: Aggregate>: Send + Sync + 'static {
    /// A key within one aggregate (an order within a product).
    type Key: Clone + Eq + Hash + Send + Sync + 'static;
    /// What the aggregate holds for one key.
    type Entry: Send + Sync + 'static;

    /// The name of this state: snapshots of aggregates without it are marked with it,
    /// so a store that keeps the state in memory never loads one.
    const NAME: &'static str;

    /// The keys whose entries deciding `command` reads.
    fn keys_read(command: &A::Command) -> Vec<Self::Key>;

    /// The keys whose entries folding `event` changes.
    fn keys_changed(event: &A::Event) -> Vec<Self::Key>;

    /// The entry `aggregate` holds for `key`.
    fn entry(aggregate: &A, key: &Self::Key) -> Self::Entry;

    /// Puts `entry` into `aggregate` for `key`, replacing what it held.
    fn remember(aggregate: &mut A, key: Self::Key, entry: Self::Entry);

    /// Drops every entry from `aggregate`.
    fn forget(aggregate: &mut A);

    /// The stored entries of the `(aggregate id, key)` pairs in `wanted`, read on
    /// `connection` in one statement; a pair without a stored entry is left out (the
    /// aggregate's default holds for it).
    fn read(
        &self,
        connection: &mut PgConnection,
        wanted: &[(&str, Self::Key)],
    ) -> impl Future<Output = Result<Entries<Self::Key, Self::Entry>, ProjectionFailure>> + Send;

    /// Stores `entries` (at most one per pair), replacing what is stored for their
    /// pairs, on `connection` (inside the transaction that appends their events).
    fn write(
        &self,
        connection: &mut PgConnection,
        entries: &[(&str, Self::Key, Self::Entry)],
    ) -> impl Future<Output = Result<(), ProjectionFailure>> + Send;
}

/// The aggregates of one attempt, by id, with their versions.
pub(crate) type States<A> = HashMap<String, (A, u64)>;

/// [`KeyedState`] without its types, as the store holds it.
#[async_trait]
pub(crate) trait WorkingSet<A: Aggregate>: Send + Sync {
    fn name(&self) -> &'static str;

    /// Reads the entries `commands` read and puts them into their aggregates in `states`.
    async fn load(
        &self,
        connection: &mut PgConnection,
        commands: &[&Command<A>],
        states: &mut States<A>,
    ) -> Result<(), ProjectionFailure>;

    /// Whether any event of `changes` changes an entry.
    fn changes_entries(&self, changes: &[Change<A>]) -> bool;

    /// Writes the entries `changes` changed, as the aggregates in `states` hold them.
    async fn save(
        &self,
        connection: &mut PgConnection,
        changes: &[Change<A>],
        states: &States<A>,
    ) -> Result<(), ProjectionFailure>;

    fn forget(&self, aggregate: &mut A);
}

#[async_trait]
impl<A, K> WorkingSet<A> for K
where
    A: Aggregate,
    A::Command: Sync,
    K: KeyedState<A>,
{
    fn name(&self) -> &'static str {
        K::NAME
    }

    async fn load(
        &self,
        connection: &mut PgConnection,
        commands: &[&Command<A>],
        states: &mut States<A>,
    ) -> Result<(), ProjectionFailure> {
        let mut wanted: Vec<(&str, K::Key)> = Vec::new();
        let mut seen = HashSet::new();
        for command in commands {
            for key in K::keys_read(&command.command) {
                if seen.insert((command.aggregate_id.as_str(), key.clone())) {
                    wanted.push((command.aggregate_id.as_str(), key));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        for (aggregate_id, key, entry) in self.read(connection, &wanted).await? {
            if let Some((aggregate, _)) = states.get_mut(&aggregate_id) {
                K::remember(aggregate, key, entry);
            }
        }
        Ok(())
    }

    fn changes_entries(&self, changes: &[Change<A>]) -> bool {
        changes.iter().flat_map(|c| &c.events).any(|e| !K::keys_changed(&e.payload).is_empty())
    }

    async fn save(
        &self,
        connection: &mut PgConnection,
        changes: &[Change<A>],
        states: &States<A>,
    ) -> Result<(), ProjectionFailure> {
        let mut entries: Vec<(&str, K::Key, K::Entry)> = Vec::new();
        for change in changes {
            let Some((aggregate, _)) = states.get(&change.aggregate_id) else { continue };
            let mut seen = HashSet::new();
            for key in change.events.iter().flat_map(|e| K::keys_changed(&e.payload)) {
                if seen.insert(key.clone()) {
                    let entry = K::entry(aggregate, &key);
                    entries.push((change.aggregate_id.as_str(), key, entry));
                }
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.write(connection, &entries).await
    }

    fn forget(&self, aggregate: &mut A) {
        K::forget(aggregate);
    }
}
