//! Executing commands against aggregates: load, decide, append and project in one
//! transaction, with a bounded number of retries when another writer committed first.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, EventEnvelope};
use lru::LruCache;
use migrations::Pooled;
use sqlx::{PgConnection, PgPool};

use telemetry::{CommandResult, CommitPath};

use crate::events::AppendError;
use crate::keyed::{KeyedState, States, WorkingSet};
use crate::projection::Change;
use crate::snapshots::Snapshots;
use crate::{CommitNotifier, EventMetadata, Events, EventsError, Projection};

/// Why commands were not committed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// A business rule refused it.
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept committing to the same aggregate first, more times than the
    /// retry budget allows.
    #[error("the aggregate kept changing concurrently; retry later")]
    Conflict,
    /// The store failed (connection, serialization, projection).
    #[error("event store failure: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The aggregate is no longer at a version the writer expected (an HTTP
    /// `If-Match` that no longer holds): nothing was decided.
    #[error("the aggregate is at version {current}, not one the writer expected")]
    Stale {
        /// Its version now (0: it has no events).
        current: u64,
    },
    /// A write with the same idempotency key was applied already (see
    /// `EventMetadata::idempotency_key`): nothing was decided.
    #[error("a write with this idempotency key was applied already")]
    Duplicate,
}

impl<E: std::error::Error> From<EventsError> for ExecuteError<E> {
    fn from(error: EventsError) -> Self {
        Self::Store(Box::new(error))
    }
}

impl<E: std::error::Error> From<sqlx::Error> for ExecuteError<E> {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(Box::new(error))
    }
}

/// A command for one aggregate, with the metadata its events will carry.
#[derive(Debug, Clone)]
pub struct Command<A: Aggregate> {
    /// The aggregate it is for.
    pub aggregate_id: String,
    /// What is asked.
    pub command: A::Command,
    /// Who asked, why, when.
    pub metadata: EventMetadata,
}

/// What a batch of commands came to: each command's result, or why none committed.
type Batch<A> = Result<Vec<Result<Committed<A>, <A as Aggregate>::Error>>, ExecuteError<<A as Aggregate>::Error>>;

/// How a batch finds the state of its aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load<'a> {
    /// Cached state as it is, without reading newer events; as `Current` for the
    /// aggregates not cached. A cache that is behind (another instance committed
    /// since) is caught by the append, as a conflict; a decision that appends
    /// nothing (a refusal, a command already satisfied) is not, so it counts as one.
    Cached,
    /// Cached state plus newer events.
    Current,
    /// The same, required to be at one of these versions.
    Expecting(&'a [u64]),
    /// None: the aggregates have no events (a wrong guess is caught as a conflict).
    AssumeNew,
}

/// What one command committed.
#[derive(Debug)]
pub struct Committed<A: Aggregate> {
    /// The events written, possibly none when the command was already satisfied.
    pub events: Vec<EventEnvelope<A>>,
    /// The aggregate's version (last sequence) after the command.
    pub version: u64,
}

/// Loads and commits one aggregate type in the event store.
///
/// Keeps the latest committed state of recently used aggregates in memory, so a busy
/// aggregate with a long history costs the same as a new one. A command on a cached
/// aggregate is decided on the cached state without reading: the event store stays the
/// only source of truth, since the append of the next sequence fails when another
/// writer took it (the cache was behind), and the command is then decided again on the
/// cached state plus the newer events. A command decided to append nothing has no
/// append to check it, so it is decided again on the current state as well. Loading
/// (and commands that expect a version) reads the events after the cached version.
///
/// Two options bound what an aggregate costs whatever its history:
/// - [`AggregateStore::with_keyed_state`]: per-key state (a product's orders) lives in
///   a table written with the events, not in the cached aggregate; a batch reads the
///   entries of the keys it needs (see [`KeyedState`]);
/// - [`AggregateStore::with_snapshots`]: an aggregate not in the cache loads from its
///   latest snapshot and the events after it (see `snapshots`).
pub struct AggregateStore<A: Aggregate> {
    pool: PgPool,
    events: Events<A>,
    projection: Option<Arc<dyn Projection<A>>>,
    command_name: fn(&A::Command) -> &'static str,
    retry: ExponentialBuilder,
    cache: Mutex<LruCache<String, (A, u64)>>,
    notifier: Option<CommitNotifier>,
    working_set: Option<Arc<dyn WorkingSet<A>>>,
    snapshot_every: Option<u64>,
}

impl<A> AggregateStore<A>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    /// Conflicts are retried this many times before giving up with `Conflict`.
    pub const MAX_RETRIES: usize = 8;

    /// Aggregates whose state is kept in memory.
    pub const CACHED_AGGREGATES: usize = 10_000;

    /// Events read per aggregate and query when loading: a fold of a long history
    /// (no snapshot yet) holds this many decoded events at a time.
    const PAGE: i64 = 10_000;

    /// A store of `A` in `pool`'s schema, without a read model.
    pub fn new(pool: PgPool) -> Self {
        let capacity = NonZeroUsize::new(Self::CACHED_AGGREGATES).unwrap_or(NonZeroUsize::MIN);
        // Short, jittered waits: a conflict means another writer just finished, so the
        // retry usually wins at once; jitter spreads a herd of writers on a hot aggregate.
        let retry = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(2))
            .with_max_delay(Duration::from_millis(100))
            .with_max_times(Self::MAX_RETRIES)
            .with_jitter();
        Self {
            pool,
            events: Events::default(),
            projection: None,
            command_name: |_| "command",
            retry,
            cache: Mutex::new(LruCache::new(capacity)),
            notifier: None,
            working_set: None,
            snapshot_every: None,
        }
    }

    /// Rings `notifier` after every commit, so that feed readers (the outbox relay)
    /// read the new events at once.
    pub fn with_commit_notifier(mut self, notifier: CommitNotifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Names commands this way in the `commands_total` metric.
    pub fn with_command_names(mut self, command_name: fn(&A::Command) -> &'static str) -> Self {
        self.command_name = command_name;
        self
    }

    /// Keeps `projection` up to date in every commit.
    pub fn with_projection(mut self, projection: impl Projection<A> + 'static) -> Self {
        self.projection = Some(Arc::new(projection));
        self
    }

    /// Reads old event versions through `upcasters`.
    pub fn with_upcasters(mut self, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        self.events = Events::with_upcasters(upcasters);
        self
    }

    /// Keeps `keyed`'s per-key state out of the aggregates it caches and snapshots: a
    /// batch reads the entries its commands need, and the commit writes the entries its
    /// events changed (see [`KeyedState`]). The schema must hold `keyed`'s table.
    pub fn with_keyed_state<K: KeyedState<A>>(mut self, keyed: K) -> Self
    where
        A::Command: Sync,
    {
        self.working_set = Some(Arc::new(keyed));
        self
    }

    /// Snapshots an aggregate (without its keyed state) whenever a commit brings its
    /// version to or past a multiple of `every`, in the commit's transaction; an
    /// aggregate not in the cache then loads from its latest snapshot and the events
    /// after it. The schema must hold the `aggregate_snapshots` table.
    pub fn with_snapshots(mut self, every: u64) -> Self {
        self.snapshot_every = Some(every).filter(|every| *every > 0);
        self
    }

    fn snapshots(&self) -> Option<Snapshots> {
        let without = self.working_set.as_ref().map_or("", |set| set.name());
        self.snapshot_every.map(|every| Snapshots { every, without })
    }

    /// How this store reads its events (with its upcasters).
    pub fn events(&self) -> &Events<A> {
        &self.events
    }

    /// The aggregate as its events fold now (a default aggregate if it has none),
    /// without its keyed state when the store keeps one apart.
    pub async fn load(&self, aggregate_id: &str) -> Result<(A, u64), ExecuteError<A::Error>> {
        let mut connection = self.pool.acquire().await?;
        let mut states = self.load_many(&mut connection, &[aggregate_id]).await?;
        Ok(states.remove(aggregate_id).unwrap_or_default())
    }

    /// The current state of each of `aggregate_ids`, without keyed state: cached state
    /// (else the latest snapshot, one query for all) plus newer events, read in one query.
    async fn load_many(
        &self,
        connection: &mut PgConnection,
        aggregate_ids: &[&str],
    ) -> Result<States<A>, ExecuteError<A::Error>> {
        let (mut states, missed) = self.cached(aggregate_ids);
        let mut from_snapshots: Vec<String> = Vec::new();
        if let Some(snapshots) = self.snapshots()
            && !missed.is_empty()
        {
            let snapshotted = snapshots.read::<A>(connection, &missed).await?;
            from_snapshots.extend(snapshotted.keys().cloned());
            states.extend(snapshotted);
        }
        // Newer events a page at a time (usually one page, of the few events after the
        // cache or the snapshot): a long fold holds one page in memory, not the history.
        let mut folded: HashMap<&str, u64> = HashMap::new();
        let mut positions: Vec<(&str, u64)> =
            aggregate_ids.iter().map(|id| (*id, states.get(*id).map_or(0, |(_, v)| *v))).collect();
        while !positions.is_empty() {
            let mut page = self.events.read_page_after(connection, &positions, Some(Self::PAGE)).await?;
            let mut unfinished = Vec::new();
            for (id, _) in positions {
                let events = page.remove(id).unwrap_or_default();
                if events.is_empty() {
                    continue;
                }
                let full_page = events.len() as i64 >= Self::PAGE;
                *folded.entry(id).or_default() += events.len() as u64;
                let (aggregate, version) = states.entry(id.to_owned()).or_default();
                for envelope in events {
                    *version = envelope.sequence as u64;
                    aggregate.apply(envelope.payload);
                }
                // A long fold over an aggregate without its keyed state would otherwise
                // gather an entry per key of its history before dropping them below.
                if let Some(working_set) = &self.working_set {
                    working_set.forget(aggregate);
                }
                if full_page {
                    unfinished.push((id, *version));
                }
            }
            positions = unfinished;
        }
        for id in aggregate_ids {
            let folded = folded.get(id).copied().unwrap_or_default();
            // Cached: what a load found (events, or a snapshot that is not cached yet).
            if folded == 0 && !from_snapshots.iter().any(|s| s == id) {
                continue;
            }
            let (aggregate, version) = states.entry((*id).to_owned()).or_default();
            // Folding events over an aggregate without its keyed state leaves entries
            // for the keys they change that do not count what came before: dropped
            // here, read from the keyed state's table when a decision needs them.
            if let Some(working_set) = &self.working_set {
                working_set.forget(aggregate);
            }
            // A long fold (a history older than snapshots, or a snapshot that no longer
            // decodes) leaves a snapshot, so that the next cold load does not repeat it.
            // Safe outside a commit: it holds committed events only, and replaces only
            // an older snapshot. A cache: failing to write it is no failure of the load.
            if let Some(snapshots) = self.snapshots()
                && folded >= snapshots.every
                && let Err(error) = snapshots.write(connection, id, aggregate, *version).await
            {
                tracing::warn!(aggregate.id = %id, %error, "snapshot after a long fold not written");
            }
            self.remember(id, aggregate, *version);
        }
        Ok(states)
    }

    /// The cached state of those of `aggregate_ids` that are cached, and the others.
    fn cached<'i>(&self, aggregate_ids: &[&'i str]) -> (States<A>, Vec<&'i str>) {
        let mut states: States<A> = HashMap::with_capacity(aggregate_ids.len());
        let mut missed = Vec::new();
        match self.cache.lock() {
            Ok(mut cache) => {
                for id in aggregate_ids {
                    match cache.get(*id) {
                        Some(cached) => {
                            states.insert((*id).to_owned(), cached.clone());
                        }
                        None => missed.push(*id),
                    }
                }
            }
            Err(_) => missed.extend(aggregate_ids),
        }
        (states, missed)
    }

    /// Caches `aggregate` at `version`, without its keyed state, unless a newer version
    /// is cached already.
    fn remember(&self, aggregate_id: &str, aggregate: &A, version: u64) {
        if let Ok(mut cache) = self.cache.lock()
            && cache.peek(aggregate_id).is_none_or(|(_, cached)| *cached < version)
        {
            let mut kept = aggregate.clone();
            if let Some(working_set) = &self.working_set {
                working_set.forget(&mut kept);
            }
            cache.put(aggregate_id.to_owned(), (kept, version));
        }
    }

    /// Every event of one aggregate, oldest first, upcast to the current versions.
    pub async fn load_events(&self, aggregate_id: &str) -> Result<Vec<EventEnvelope<A>>, ExecuteError<A::Error>> {
        let mut connection = self.pool.acquire().await?;
        Ok(self.events.read_all(&mut connection, aggregate_id).await?)
    }

    /// The aggregate's version with every event recorded by `time` (0: none yet).
    pub async fn version_at(&self, aggregate_id: &str, time: DateTime<Utc>) -> Result<u64, ExecuteError<A::Error>> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND recorded_at <= $3",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(time)
        .fetch_one(&self.pool)
        .await?;
        Ok(version.map_or(0, |v| v as u64))
    }

    /// A page of one aggregate's events with their stored columns, for auditors (see
    /// [`crate::load_history`]); `None` when it has no events.
    pub async fn history(
        &self,
        aggregate_id: &str,
        from: i64,
        limit: i64,
    ) -> Result<Option<crate::HistoryPage>, ExecuteError<A::Error>> {
        Ok(crate::load_history(&self.pool, A::TYPE, aggregate_id, from, limit).await?)
    }

    /// Runs `command` on the aggregate and commits what it decides, retrying on
    /// optimistic-lock conflicts with a fresh load each time.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, ExecuteError<A::Error>> {
        self.execute_if(aggregate_id, None, command, metadata).await
    }

    /// Like [`AggregateStore::execute`], only while the aggregate is at one of
    /// `versions` when given (what the writer last saw): otherwise
    /// [`ExecuteError::Stale`] and nothing is decided. Checked against the state the
    /// command is decided on, so a writer that commits in between makes it stale too.
    pub async fn execute_if(
        &self,
        aggregate_id: &str,
        versions: Option<&[u64]>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, ExecuteError<A::Error>> {
        let command = Command { aggregate_id: aggregate_id.to_owned(), command, metadata: metadata.clone() };
        let batch = std::slice::from_ref(&command);
        only(match versions {
            None => self.optimistic(batch, Load::Cached).await,
            Some(versions) => self.retried(batch, Load::Expecting(versions)).await,
        })
    }

    /// Like [`AggregateStore::execute`], for an aggregate that has no events yet (its id
    /// was just generated): the first attempt skips reading the store. Should it exist
    /// after all, the append conflicts and the command is retried the normal way.
    pub async fn execute_new(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, ExecuteError<A::Error>> {
        let command = Command { aggregate_id: aggregate_id.to_owned(), command, metadata: metadata.clone() };
        only(self.optimistic(std::slice::from_ref(&command), Load::AssumeNew).await)
    }

    /// Runs `commands` in order (each on the state its predecessors left) and commits
    /// everything they decide in one transaction, retrying the whole batch on
    /// conflicts. A command a business rule refuses gets its error in the result and
    /// decides nothing; the others still commit.
    pub async fn execute_all(
        &self,
        commands: &[Command<A>],
    ) -> Result<Vec<Result<Committed<A>, A::Error>>, ExecuteError<A::Error>> {
        self.optimistic(commands, Load::Cached).await
    }

    /// Runs `commands` once loading as `load`, which may decide on state behind the
    /// store (`Cached`, `AssumeNew`): when the store refuses the append (or
    /// `Cached` decided to append nothing), again on the current state, retrying on
    /// conflicts. One statement fewer per command whenever the cache is current, as it
    /// is for the aggregates an instance alone writes.
    async fn optimistic(&self, commands: &[Command<A>], load: Load<'_>) -> Batch<A> {
        match self.try_execute_all(commands, load).await {
            Err(ExecuteError::Conflict) => self.retried(commands, Load::Current).await,
            other => self.counted(commands, other),
        }
    }

    /// Runs `commands` loading as `load`, retrying the whole batch on conflicts, and
    /// counts how each ended.
    async fn retried(&self, commands: &[Command<A>], load: Load<'_>) -> Batch<A> {
        let outcome = (|| self.try_execute_all(commands, load))
            .retry(self.retry)
            .when(|error| matches!(error, ExecuteError::Conflict))
            .notify(|_, wait| tracing::debug!(commands = commands.len(), ?wait, "optimistic lock conflict, retrying"))
            .await;
        self.counted(commands, outcome)
    }

    /// Counts each of `commands` under how it ended, and the events appended.
    fn counted(&self, commands: &[Command<A>], outcome: Batch<A>) -> Batch<A> {
        for (index, command) in commands.iter().enumerate() {
            let result = match &outcome {
                Ok(results) => match results.get(index) {
                    Some(Ok(committed)) => {
                        let appended = committed.events.len();
                        if appended > 0 {
                            telemetry::record_events_appended(A::TYPE, appended as u64);
                        }
                        CommandResult::Accepted
                    }
                    _ => CommandResult::Rejected,
                },
                Err(ExecuteError::Rejected(_)) => CommandResult::Rejected,
                Err(ExecuteError::Conflict | ExecuteError::Stale { .. } | ExecuteError::Duplicate) => {
                    CommandResult::Conflict
                }
                Err(ExecuteError::Store(_)) => CommandResult::Failed,
            };
            telemetry::record_command(A::TYPE, (self.command_name)(&command.command), result);
        }
        outcome
    }

    async fn try_execute_all(
        &self,
        commands: &[Command<A>],
        load: Load<'_>,
    ) -> Result<Vec<Result<Committed<A>, A::Error>>, ExecuteError<A::Error>> {
        let mut ids: Vec<&str> = commands.iter().map(|c| c.aggregate_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        // One connection for the whole attempt: every connection given back to the pool
        // costs a round trip (sqlx checks it on release). `Pooled`: the caller (a
        // request) may be dropped while the commit's transaction begins.
        let mut connection = Pooled::acquire(&self.pool).await?;
        let mut states = match load {
            Load::Cached => {
                let (mut states, missed) = self.cached(&ids);
                if !missed.is_empty() {
                    states.extend(self.load_many(&mut connection, &missed).await?);
                }
                states
            }
            Load::Current | Load::Expecting(_) => self.load_many(&mut connection, &ids).await?,
            Load::AssumeNew => HashMap::new(),
        };
        if let Load::Expecting(versions) = load {
            for id in &ids {
                let current = states.get(*id).map_or(0, |(_, version)| *version);
                if !versions.contains(&current) {
                    return Err(ExecuteError::Stale { current });
                }
            }
        }
        // Read after the events: entries newer than the folded events can only come with
        // events this attempt has not seen, and its append then conflicts.
        if let (Load::Cached | Load::Current | Load::Expecting(_), Some(working_set)) = (load, &self.working_set) {
            let all: Vec<&Command<A>> = commands.iter().collect();
            working_set.load(&mut connection, &all, &mut states).await.map_err(ExecuteError::Store)?;
        }
        let mut changes: Vec<Change<A>> = Vec::new();
        let mut results = Vec::with_capacity(commands.len());
        for command in commands {
            let (aggregate, version) = states.entry(command.aggregate_id.clone()).or_default();
            let sink = EventSink::default();
            if let Err(rule) = aggregate.handle(command.command.clone(), &(), &sink).await {
                if load == Load::Cached {
                    return Err(ExecuteError::Conflict);
                }
                // A refusing `handle` may have applied events before it refused: start
                // this aggregate again from what is committed and decided so far.
                let mut restored_state = self.load_many(&mut connection, &[command.aggregate_id.as_str()]).await?;
                if let Some(working_set) = &self.working_set {
                    let its: Vec<&Command<A>> =
                        commands.iter().filter(|c| c.aggregate_id == command.aggregate_id).collect();
                    working_set.load(&mut connection, &its, &mut restored_state).await.map_err(ExecuteError::Store)?;
                }
                let (mut restored, mut restored_version) =
                    restored_state.remove(&command.aggregate_id).unwrap_or_default();
                for event in changes.iter().filter(|c| c.aggregate_id == command.aggregate_id).flat_map(|c| &c.events) {
                    restored.apply(event.payload.clone());
                    restored_version = event.sequence as u64;
                }
                (*aggregate, *version) = (restored, restored_version);
                results.push(Err(rule));
                continue;
            }
            let metadata = command.metadata.to_map();
            let events: Vec<EventEnvelope<A>> = sink
                .collect()
                .await
                .into_iter()
                .map(|payload| {
                    *version += 1;
                    EventEnvelope {
                        aggregate_id: command.aggregate_id.clone(),
                        sequence: *version as usize,
                        payload,
                        metadata: metadata.clone(),
                    }
                })
                .collect();
            if !events.is_empty() {
                match changes.iter_mut().find(|c| c.aggregate_id == command.aggregate_id) {
                    Some(change) => change.events.extend(events.iter().cloned()),
                    None => changes.push(Change { aggregate_id: command.aggregate_id.clone(), events: events.clone() }),
                }
            }
            if events.is_empty() && load == Load::Cached {
                return Err(ExecuteError::Conflict);
            }
            results.push(Ok(Committed { events, version: *version }));
        }
        if changes.is_empty() {
            return Ok(results);
        }
        self.commit(&mut connection, &changes, &states).await?;
        for change in &changes {
            if let Some((aggregate, version)) = states.get(&change.aggregate_id) {
                self.remember(&change.aggregate_id, aggregate, *version);
            }
        }
        Ok(results)
    }

    /// Appends the changes and updates the keyed state, the projection and the
    /// snapshots due, atomically: in one statement (the keyed entries with the events)
    /// when there is no projection, or when the projection can tell the changes' rows
    /// up front (new aggregates, and those whose rows it remembers: placing an order,
    /// its outcome, a product's reservations), and no snapshot is due; otherwise in one
    /// transaction. `states` holds the aggregates after the changes.
    async fn commit(
        &self,
        connection: &mut Pooled,
        changes: &[Change<A>],
        states: &States<A>,
    ) -> Result<(), ExecuteError<A::Error>> {
        let events = || changes.iter().flat_map(|c| &c.events);
        let entries = self.working_set.as_ref().and_then(|set| set.rows_of(changes, states));
        let snapshots = self.snapshots();
        let snapshots_due: Vec<(&str, &A, u64)> = match snapshots {
            None => vec![],
            Some(snapshots) => changes
                .iter()
                .filter(|c| match (c.events.first(), c.events.last()) {
                    (Some(first), Some(last)) => snapshots.due(first.sequence as u64 - 1, last.sequence as u64),
                    _ => false,
                })
                .filter_map(|c| {
                    states
                        .get(&c.aggregate_id)
                        .map(|(aggregate, version)| (c.aggregate_id.as_str(), aggregate, *version))
                })
                .collect(),
        };
        let single_statement = match &self.projection {
            _ if !snapshots_due.is_empty() => None,
            None => Some(None),
            Some(projection) => projection.rows_of(changes).map_err(ExecuteError::Store)?.map(Some),
        };
        let path = if single_statement.is_some() { CommitPath::Statement } else { CommitPath::Transaction };
        if let Some(rows) = single_statement {
            appended(self.events.append_with_rows(&mut **connection, events(), rows.as_ref(), entries.as_ref()).await)?;
        } else {
            let mut transaction = connection.begin().await?;
            appended(self.events.append_with_rows(&mut *transaction, events(), None, entries.as_ref()).await)?;
            if let Some(projection) = &self.projection {
                projection.apply(&mut transaction, &self.events, changes).await.map_err(ExecuteError::Store)?;
            }
            if let Some(snapshots) = snapshots {
                for (aggregate_id, aggregate, version) in snapshots_due {
                    let mut state = aggregate.clone();
                    if let Some(working_set) = &self.working_set {
                        working_set.forget(&mut state);
                    }
                    snapshots.write(&mut transaction, aggregate_id, &state, version).await?;
                }
            }
            transaction.commit().await?;
        }
        telemetry::record_commit(A::TYPE, path);
        if let Some(projection) = &self.projection {
            projection.committed(changes);
        }
        if let Some(notifier) = &self.notifier {
            notifier.committed();
        }
        Ok(())
    }
}

/// The result of a batch of one command.
fn only<A: Aggregate>(batch: Batch<A>) -> Result<Committed<A>, ExecuteError<A::Error>> {
    batch?.pop().unwrap_or(Ok(Committed { events: vec![], version: 0 })).map_err(ExecuteError::Rejected)
}

fn appended<E: std::error::Error>(result: Result<(), AppendError>) -> Result<(), ExecuteError<E>> {
    match result {
        Ok(()) => Ok(()),
        Err(AppendError::Conflict) => Err(ExecuteError::Conflict),
        Err(AppendError::Duplicate) => Err(ExecuteError::Duplicate),
        Err(AppendError::Events(error)) => Err(error.into()),
    }
}
