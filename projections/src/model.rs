//! Read models as generations of tables behind one name.
//!
//! A model (`order_view`) is queried through an SQL view of that name over the table of
//! its active generation (`order_view_v3`). While a rebuild fills the next generation,
//! every commit writes both tables, so the new one can take over at any moment after
//! it has covered what was committed before the rebuild began (see [`crate::rebuild`]).

use std::collections::HashMap;
use std::marker::PhantomData;

use async_trait::async_trait;
use eventstore::{Change, Events, NewRows, Projection, ProjectionFailure};
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
    /// writes the rows of new aggregates (`jsonb_populate_recordset`); it must store
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
pub struct Projector<T> {
    target: Target,
    table: PhantomData<fn() -> T>,
}

impl<T: ViewTable> Projector<T> {
    /// Writes the live tables.
    pub fn live() -> Self {
        Self { target: Target::Live, table: PhantomData }
    }

    /// Writes `table` only.
    pub fn into_table(table: impl Into<String>) -> Self {
        Self { target: Target::Table(table.into()), table: PhantomData }
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
        for table in tables {
            let current =
                if to_read.is_empty() { HashMap::new() } else { T::get_many(connection, &table, &to_read).await? };
            let views = advance(connection, events, &changes, current).await?;
            T::save_all(connection, &table, &views).await?;
        }
        Ok(())
    }

    fn rows_of_new(
        &self,
        changes: &[Change<<T::View as View>::Aggregate>],
    ) -> Result<Option<NewRows>, ProjectionFailure> {
        // A rebuild's table is written by the rebuild alone, through `apply`.
        if self.target != Target::Live || changes.iter().any(|c| c.events.first().is_none_or(|e| e.sequence != 1)) {
            return Ok(None);
        }
        let mut rows = Vec::with_capacity(changes.len());
        for change in changes {
            rows.extend(T::View::fold(&change.events)?.as_ref().map(T::to_row));
        }
        Ok(Some(NewRows { model: T::MODEL.to_owned(), rows: serde_json::Value::Array(rows) }))
    }
}
