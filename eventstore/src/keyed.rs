//! Per-key state of an aggregate kept in a table beside its events instead of in the
//! aggregate's memory: what keeps an aggregate that serves an unbounded number of keys
//! (a product and the orders it served) small, whatever its history.
//!
//! The store folds and caches the aggregate without its keyed entries; before a batch
//! decides, it reads the entries of the keys the batch's commands read and puts them
//! into the aggregates; the statement that appends the batch's events writes the
//! entries those events changed, as the aggregates then hold them.
//! Every write of an entry comes with an append to its aggregate's stream, so the
//! optimistic version check on the stream catches a concurrent writer of the entries
//! too (the entries are read after the events: entries newer than the folded events
//! can only mean a conflict on append).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::EntryRows;
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
    type Key: Clone + Eq + Hash + Ord + Send + Sync + 'static;
    /// What the aggregate holds for one key.
    type Entry: Send + Sync + 'static;

    /// The table the entries are stored in, one row per (aggregate, key). Also the name
    /// of this state: snapshots of aggregates without it are marked with it, so a store
    /// that keeps the state in memory never loads one.
    const NAME: &'static str;

    /// The table's primary-key columns (the aggregate's id and the key).
    const KEY_COLUMNS: &'static [&'static str];

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

    /// The table's row of `entry`, as a JSON object keyed by column name: written with
    /// the events that changed it, replacing the stored row of its key.
    fn to_row(aggregate_id: &str, key: &Self::Key, entry: &Self::Entry) -> serde_json::Value;
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

    /// The rows of the entries `changes` changed, as the aggregates in `states` hold
    /// them, sorted by key; `None` when no event changes an entry.
    fn rows_of(&self, changes: &[Change<A>], states: &States<A>) -> Option<EntryRows>;

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

    fn rows_of(&self, changes: &[Change<A>], states: &States<A>) -> Option<EntryRows> {
        let mut changed: Vec<(&str, K::Key)> = changes
            .iter()
            .flat_map(|change| {
                change
                    .events
                    .iter()
                    .flat_map(|e| K::keys_changed(&e.payload))
                    .map(|key| (change.aggregate_id.as_str(), key))
            })
            .collect();
        changed.sort_unstable();
        changed.dedup();
        let rows: Vec<serde_json::Value> = changed
            .iter()
            .filter_map(|(aggregate_id, key)| {
                let (aggregate, _) = states.get(*aggregate_id)?;
                Some(K::to_row(aggregate_id, key, &K::entry(aggregate, key)))
            })
            .collect();
        if rows.is_empty() {
            return None;
        }
        Some(EntryRows { table: K::NAME, key: K::KEY_COLUMNS, rows: serde_json::Value::Array(rows) })
    }

    fn forget(&self, aggregate: &mut A) {
        K::forget(aggregate);
    }
}
