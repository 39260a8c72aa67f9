//! Read models as generations of tables behind one name.
//!
//! A model (`order_view`) is queried through an SQL view of that name over the table of
//! its active generation (`order_view_v3`). While a rebuild fills the next generation,
//! every commit writes both tables, so the new one can take over at any moment after
//! it has covered what was committed before the rebuild began (see [`crate::rebuild`]).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use async_trait::async_trait;
use eventstore::{Change, Events, Projection, ProjectionFailure, ViewRows};
use lru::LruCache;
use sqlx::PgConnection;

use crate::ProjectionError;
use crate::view::{View, advance, ids_to_read};

/// A table of views of one model, whichever generation.
#[async_trait]
pub trait ViewTable: Send + Sync + 'static {
    /// The rows it holds.
    type View: View + Sync;
    /// The model's name: the SQL view clients' queries read, and the tables' prefix.
    const MODEL: &'static str;
    /// The primary-key column.
    const KEY: &'static str;

    /// The stored views of `ids` in `table`, by id.
    async fn get_many(
        connection: &mut PgConnection,
        table: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, Self::View>, ProjectionError>;

    /// Writes `views` into `table` in one statement, each unless a newer one is there.
    async fn save_all(connection: &mut PgConnection, table: &str, views: &[Self::View]) -> Result<(), ProjectionError>;

    /// The row of `view` as a JSON object keyed by column name, as the event store
    /// writes rows with the events (`jsonb_populate_recordset`); it must store
    /// what [`ViewTable::save_all`] stores.
    fn to_row(view: &Self::View) -> serde_json::Value;
}

/// The table of generation `generation` of `model`.
pub fn table_name(model: &str, generation: i32) -> String {
    format!("{model}_v{generation}")
}

/// Where a model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations {
    /// The generation queries read.
    pub active: i32,
    /// The generation being built, if any.
    pub building: Option<i32>,
    /// Transactions below this id may have skipped the building table.
    pub horizon: Option<u64>,
}

impl Generations {
    /// The tables a commit must keep up to date.
    pub fn live_tables(&self, model: &str) -> Vec<String> {
        std::iter::once(self.active).chain(self.building).map(|g| table_name(model, g)).collect()
    }
}

/// Reads where `model` stands.
pub async fn generations(connection: &mut PgConnection, model: &str) -> Result<Generations, ProjectionError> {
    let row: Option<(i32, Option<i32>, Option<String>)> =
        sqlx::query_as("SELECT active_generation, building_generation, horizon::text FROM read_models WHERE name = $1")
            .bind(model)
            .fetch_optional(&mut *connection)
            .await?;
    let (active, building, horizon) =
        row.ok_or_else(|| ProjectionError::Corrupt(format!("read model {model} is not registered")))?;
    Ok(Generations { active, building, horizon: horizon.and_then(|h| h.parse().ok()) })
}

/// Which tables a [`Projector`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The model's live tables (active, and the one being built), read in each
    /// transaction: what commands write.
    Live,
    /// One table: what a rebuild writes.
    Table(String),
}

/// The projection of a [`ViewTable`] model, for the event store's commits and for
/// rebuilds.
pub struct Projector<T: ViewTable> {
    target: Target,
    remembered: Option<Remembered<T::View>>,
}

impl<T: ViewTable> Projector<T> {
    /// Writes the live tables.
    pub fn live() -> Self {
        Self { target: Target::Live, remembered: None }
    }

    /// Writes `table` only.
    pub fn into_table(table: impl Into<String>) -> Self {
        Self { target: Target::Table(table.into()), remembered: None }
    }

    /// Remembers the committed rows of the last `capacity` aggregates committed
    /// through this projection, so that a command on one of them writes its row in the
    /// statement that appends its events (see [`Projection::rows_of`]), instead of a
    /// transaction that reads the row first. For the live tables only, as commands
    /// write them.
    pub fn remembering(mut self, capacity: usize) -> Self {
        if self.target == Target::Live {
            self.remembered = NonZeroUsize::new(capacity).map(Remembered::<T::View>::new);
        }
        self
    }

    /// The row of `change`'s aggregate after its events, computed without reading:
    /// folded from nothing when the change creates the aggregate, else from the row
    /// remembered at the version just before it; `None` when that is not remembered.
    fn row_after(
        &self,
        change: &Change<<T::View as View>::Aggregate>,
    ) -> Option<Result<Option<T::View>, ProjectionError>> {
        let first = change.events.first()?.sequence as u64;
        let before = match first {
            1 => None,
            _ => Some(self.remembered.as_ref()?.at(&change.aggregate_id, first - 1)?),
        };
        Some(change.events.iter().try_fold(before, T::View::apply))
    }
}

/// Committed rows by aggregate id, each at its version: a row and the events after
/// its version fold into the row after them, as the table would hold it. Only rows
/// known to be committed go in (read from the active table, or moved forward by a
/// commit that succeeded), and one is used only at the version the next events follow,
/// so a row that another instance has moved on since is passed over, never written.
struct Remembered<V> {
    rows: Mutex<LruCache<String, V>>,
}

impl<V: View> Remembered<V> {
    fn new(capacity: NonZeroUsize) -> Self {
        Self { rows: Mutex::new(LruCache::new(capacity)) }
    }

    /// The row of `aggregate_id` if it is remembered at `version`.
    fn at(&self, aggregate_id: &str, version: u64) -> Option<V> {
        self.rows.lock().ok()?.get(aggregate_id).filter(|row| row.version() == version).cloned()
    }

    /// Keeps `row` (committed) unless a newer row of its aggregate is kept.
    fn keep(&self, aggregate_id: &str, row: V) {
        if let Ok(mut rows) = self.rows.lock()
            && rows.peek(aggregate_id).is_none_or(|kept| kept.version() < row.version())
        {
            rows.put(aggregate_id.to_owned(), row);
        }
    }
}

#[async_trait]
impl<T: ViewTable> Projection<<T::View as View>::Aggregate> for Projector<T> {
    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &Events<<T::View as View>::Aggregate>,
        changes: &[Change<<T::View as View>::Aggregate>],
    ) -> Result<(), ProjectionFailure> {
        // Read after the events were appended (the transaction has its id by now): a
        // rebuild that registered later covers this transaction from the feed.
        let tables = match &self.target {
            Target::Live => generations(connection, T::MODEL).await?.live_tables(T::MODEL),
            Target::Table(table) => vec![table.clone()],
        };
        // Rows are locked in one order, by aggregate id, whoever writes them (commands,
        // the feed catch-up, a rebuild): two writers can never wait for each other.
        let mut changes: Vec<&Change<_>> = changes.iter().collect();
        changes.sort_by(|a, b| a.aggregate_id.cmp(&b.aggregate_id));
        // A live table may hold a row even for a change that starts at the aggregate's
        // first event (the catch-up replays what commands already wrote): read it, so
        // that nothing is written, nor locked, for rows already up to date. A table of
        // its own (a rebuild's) is only read for aggregates it must have seen before.
        let to_read: Vec<&str> = match &self.target {
            Target::Live => changes.iter().map(|c| c.aggregate_id.as_str()).collect(),
            Target::Table(_) => ids_to_read(&changes),
        };
        for (index, table) in tables.iter().enumerate() {
            let current =
                if to_read.is_empty() { HashMap::new() } else { T::get_many(connection, table, &to_read).await? };
            // The active table's rows, read before this transaction wrote them, are
            // committed ones: remembered, `committed` moves them past these changes.
            if let (0, Some(remembered)) = (index, &self.remembered) {
                for (aggregate_id, row) in &current {
                    remembered.keep(aggregate_id, row.clone());
                }
            }
            let views = advance(connection, events, &changes, current).await?;
            T::save_all(connection, table, &views).await?;
        }
        Ok(())
    }

    fn rows_of(&self, changes: &[Change<<T::View as View>::Aggregate>]) -> Result<Option<ViewRows>, ProjectionFailure> {
        // A rebuild's table is written by the rebuild alone, through `apply`.
        if self.target != Target::Live {
            return Ok(None);
        }
        let mut changes: Vec<&Change<_>> = changes.iter().collect();
        changes.sort_by(|a, b| a.aggregate_id.cmp(&b.aggregate_id));
        let updates = changes.iter().any(|c| c.events.first().is_some_and(|e| e.sequence > 1));
        let mut rows = Vec::with_capacity(changes.len());
        for change in changes {
            let Some(after) = self.row_after(change) else { return Ok(None) };
            rows.extend(after?.as_ref().map(T::to_row));
        }
        let key = updates.then_some(T::KEY);
        Ok(Some(ViewRows { model: T::MODEL, key, rows: serde_json::Value::Array(rows) }))
    }

    fn committed(&self, changes: &[Change<<T::View as View>::Aggregate>]) {
        let Some(remembered) = &self.remembered else { return };
        for change in changes {
            // Nothing to move forward when the row before these changes is not
            // remembered.
            if let Some(Ok(Some(row))) = self.row_after(change) {
                remembered.keep(&change.aggregate_id, row);
            }
        }
    }
}
