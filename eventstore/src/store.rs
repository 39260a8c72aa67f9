//! Executing a command against one aggregate: load, handle, commit, with a bounded
//! number of retries when another writer committed first.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventRepository, PersistedEventStore, PersistenceError};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use lru::LruCache;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use crate::EventMetadata;

/// Why a command was not committed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// A business rule refused it.
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept committing to the same aggregate first, more times than the
    /// retry budget allows.
    #[error("the aggregate kept changing concurrently; retry later")]
    Conflict,
    /// The store failed (connection, serialization).
    #[error("event store failure: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The result of a committed command.
#[derive(Debug)]
pub struct Committed<A: Aggregate> {
    /// The aggregate after the new events.
    pub aggregate: A,
    /// The events written, possibly none when the command was already satisfied.
    pub events: Vec<EventEnvelope<A>>,
    /// The aggregate's version (last sequence) after the command.
    pub version: u64,
}

/// Loads and commits one aggregate type in the event store.
///
/// Keeps the latest folded state of recently used aggregates in memory: loading one
/// then reads only the events committed after the cached version (usually none), so
/// a busy aggregate with a long history costs the same as a new one. The event store
/// stays the only source of truth: the cache is a prefix of it, brought up to date
/// before every decision, and a conflict only means the next read finds more events.
pub struct AggregateStore<A: Aggregate> {
    store: PersistedEventStore<PostgresEventRepository, A>,
    events: PostgresEventRepository,
    pool: PgPool,
    retry: ExponentialBuilder,
    cache: Mutex<LruCache<String, (A, u64)>>,
}

impl<A> AggregateStore<A>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    /// Conflicts are retried this many times before giving up with `Conflict`.
    pub const MAX_RETRIES: usize = 8;

    /// A store replaying full event streams.
    ///
    /// postgres-es snapshots are deliberately not offered: in 0.5 a snapshot update
    /// that loses a race is reported as a conflict *after* the events committed, so a
    /// retry would store the command twice.
    pub fn event_sourced(pool: PgPool) -> Self {
        Self::with(PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone())), pool)
    }

    /// Aggregates whose state is kept in memory.
    pub const CACHED_AGGREGATES: usize = 10_000;

    fn with(store: PersistedEventStore<PostgresEventRepository, A>, pool: PgPool) -> Self {
        let capacity = NonZeroUsize::new(Self::CACHED_AGGREGATES).unwrap_or(NonZeroUsize::MIN);
        // Short, jittered waits: a conflict means another writer just finished, so the
        // retry usually wins at once; jitter spreads a herd of writers on a hot aggregate.
        let retry = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(2))
            .with_max_delay(Duration::from_millis(100))
            .with_max_times(Self::MAX_RETRIES)
            .with_jitter();
        Self { store, events: PostgresEventRepository::new(pool.clone()), pool, retry, cache: Mutex::new(LruCache::new(capacity)) }
    }

    /// The aggregate as its events fold now (a default aggregate if it has none).
    pub async fn load(&self, aggregate_id: &str) -> Result<(A, u64), ExecuteError<A::Error>> {
        let cached = self.cache.lock().ok().and_then(|mut cache| cache.get(aggregate_id).cloned());
        let (mut aggregate, mut version) = cached.unwrap_or_default();
        let newer = self
            .events
            .get_last_events::<A>(aggregate_id, version as usize)
            .await
            .map_err(|e| into_execute_error(e.into()))?;
        for event in newer {
            let envelope = EventEnvelope::<A>::try_from(event).map_err(|e: PersistenceError| into_execute_error(e.into()))?;
            version = envelope.sequence as u64;
            aggregate.apply(envelope.payload);
        }
        self.remember(aggregate_id, &aggregate, version);
        Ok((aggregate, version))
    }

    fn remember(&self, aggregate_id: &str, aggregate: &A, version: u64) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.peek(aggregate_id).is_none_or(|(_, cached)| *cached < version) {
                cache.put(aggregate_id.to_owned(), (aggregate.clone(), version));
            }
        }
    }

    /// Every event of one aggregate, oldest first, upcast to the current versions.
    pub async fn load_events(&self, aggregate_id: &str) -> Result<Vec<EventEnvelope<A>>, ExecuteError<A::Error>> {
        self.store.load_events(aggregate_id).await.map_err(into_execute_error)
    }

    /// Every event of one aggregate with its stored columns, for auditors.
    pub async fn history(&self, aggregate_id: &str) -> Result<Vec<crate::StoredEvent>, ExecuteError<A::Error>> {
        crate::load_history(&self.pool, A::TYPE, aggregate_id)
            .await
            .map_err(|e| ExecuteError::Store(Box::new(e)))
    }

    /// Runs `command` on the aggregate and commits what it decides, retrying on
    /// optimistic-lock conflicts with a fresh load each time.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, ExecuteError<A::Error>> {
        (|| self.try_execute(aggregate_id, command.clone(), metadata))
            .retry(self.retry)
            .when(|error| matches!(error, ExecuteError::Conflict))
            .notify(|_, wait| tracing::debug!(aggregate.id = aggregate_id, ?wait, "optimistic lock conflict, retrying"))
            .await
    }

    async fn try_execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, ExecuteError<A::Error>> {
        let (current, before) = self.load(aggregate_id).await?;
        let mut context = EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: current,
            current_sequence: before as usize,
            current_snapshot: None,
        };
        let sink = EventSink::default();
        context
            .aggregate
            .handle(command, &(), &sink)
            .await
            .map_err(ExecuteError::Rejected)?;
        let events = sink.collect().await;
        let aggregate = context.aggregate.clone();
        if events.is_empty() {
            return Ok(Committed { aggregate, events: vec![], version: before });
        }
        let version = before + events.len() as u64;
        let events = self
            .store
            .commit(events, context, metadata.to_map())
            .await
            .map_err(into_execute_error)?;
        self.remember(aggregate_id, &aggregate, version);
        Ok(Committed { aggregate, events, version })
    }
}

fn into_execute_error<E: std::error::Error>(error: AggregateError<E>) -> ExecuteError<E> {
    match error {
        AggregateError::UserError(e) => ExecuteError::Rejected(e),
        AggregateError::AggregateConflict => ExecuteError::Conflict,
        AggregateError::DatabaseConnectionError(e)
        | AggregateError::DeserializationError(e)
        | AggregateError::UnexpectedError(e) => ExecuteError::Store(e),
    }
}
