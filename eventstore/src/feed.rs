//! The commit-ordered feed of all events in a schema, with persisted reader positions.
//!
//! Rows are read in `(transaction_id, global_position)` order, and only from
//! transactions older than every transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`). A transaction still in flight can
//! therefore never commit a row *behind* a position already read: the feed has no
//! gaps, whatever the commit order of concurrent writers. Within one aggregate the
//! order is its sequence order, since each command writes one aggregate in one
//! transaction after the previous one committed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::{PgConnection, PgExecutor, PgPool};
use sqlx::types::Json;
use sqlx::postgres::PgListener;
use telemetry::FeedReader;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::CommitNotifier;

/// How often a follower's lag is measured at most. The count reads the index of the
/// events after the position, so a follower far behind waits longer between two
/// counts: at least ten times what the last one took.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// A place in the feed; readers resume after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition {
    /// The writing transaction.
    pub transaction_id: u64,
    /// The row's global position.
    pub global_position: i64,
}

/// One event as the feed delivers it: the stored columns, untouched.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Where it is in the feed.
    pub position: FeedPosition,
    /// Its unique id.
    pub event_id: Uuid,
    /// `Order`, `Product`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// Its place in the aggregate's stream.
    pub sequence: i64,
    /// The event's name.
    pub event_type: String,
    /// The payload's schema version.
    pub event_version: String,
    /// The payload as stored (tagged with the event name), as JSON text: decoded
    /// only by whoever needs it, into whatever type it needs.
    pub payload: Box<RawValue>,
    /// The metadata as stored.
    pub metadata: HashMap<String, String>,
    /// When the writing transaction began.
    pub recorded_at: DateTime<Utc>,
}

impl FeedEvent {
    /// A metadata field, when present.
    pub fn metadata_field(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Decodes it as an event of `A` (see [`crate::Events::decode_stored`]).
    pub fn decode<A: cqrs_es::Aggregate>(self, events: &crate::Events<A>) -> Result<cqrs_es::EventEnvelope<A>, crate::EventsError> {
        events.decode_stored(self.aggregate_id, self.sequence, self.event_type, self.event_version, &self.payload, self.metadata)
    }

    /// The trace headers the command that wrote it kept (see
    /// [`crate::EventMetadata::trace_headers`]); empty when it kept none.
    pub fn trace_headers(&self) -> Vec<(String, String)> {
        crate::metadata::trace_headers_in(|key| self.metadata_field(key))
    }

    /// The payload without the enum tag postgres-es stores around it.
    pub fn fields(&self) -> Value {
        // The column is jsonb, so the text always parses.
        match serde_json::from_str(self.payload.get()).unwrap_or(Value::Null) {
            Value::Object(mut tagged) if tagged.len() == 1 => tagged.remove(&self.event_type).unwrap_or(Value::Null),
            Value::String(_) => Value::Object(Default::default()),
            other => other,
        }
    }
}

/// A named reader of the feed with its persisted position.
#[derive(Debug, Clone)]
pub struct Feed {
    pool: PgPool,
    name: String,
    lag_reported_as: Option<FeedReader>,
    woken_by: Option<CommitNotifier>,
    poll: Duration,
    linger: Duration,
}

/// One page of the feed as [`Feed::read_page`] reads it.
#[derive(Debug, Default)]
pub struct FeedPage {
    /// The events, in feed order.
    pub events: Vec<FeedEvent>,
    /// Whether committed events lie beyond what the page could show, held back by an
    /// older transaction still open: reading again soon will find them.
    pub held_back: bool,
}

type FeedRow = (
    bool,
    Option<String>,
    Option<i64>,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Json<Box<RawValue>>>,
    Option<Json<HashMap<String, String>>>,
    Option<DateTime<Utc>>,
);

/// The shortest wait before reading again when events are held back by an older open
/// transaction; it doubles while they stay held back, up to [`HELD_BACK_MAX_WAIT`]
/// (or the poll interval, if shorter).
const HELD_BACK_WAIT: Duration = Duration::from_millis(1);
const HELD_BACK_MAX_WAIT: Duration = Duration::from_millis(50);

impl Feed {
    /// The reader `name` of the feed in `pool`'s schema.
    pub fn new(pool: PgPool, name: impl Into<String>) -> Self {
        Self { pool, name: name.into(), lag_reported_as: None, woken_by: None, poll: Duration::from_millis(100), linger: Duration::ZERO }
    }

    /// While [`Feed::follow`] runs, reads as soon as `notifier` rings (a commit in this
    /// process or, through PostgreSQL, in another), besides polling, and re-reads
    /// within milliseconds when committed events are held back by an older open
    /// transaction.
    pub fn woken_by(mut self, notifier: CommitNotifier) -> Self {
        self.woken_by = Some(notifier);
        self
    }

    /// While [`Feed::follow`] runs, a commit that wakes it is read no sooner than
    /// `linger` after its previous read, so that a stream of commits is read (and
    /// handled) in batches rather than one by one: fewer, larger batches for at most
    /// `linger` of latency. After a quiet spell it reads at once. None unless set.
    pub fn lingering(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// While [`Feed::follow`] runs, looks for new events this often when nothing wakes
    /// it earlier (100 ms unless set).
    pub fn polling_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// While [`Feed::follow`] runs, reports how many committed events lie after this
    /// reader's position on the lag gauge of `reader`, labelled with the feed's name.
    pub fn reporting_lag_as(mut self, reader: FeedReader) -> Self {
        self.lag_reported_as = Some(reader);
        self
    }

    /// The reader's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where this reader stopped; the start of the feed if it never read.
    pub async fn checkpoint(&self) -> Result<FeedPosition, sqlx::Error> {
        self.checkpoint_on(&self.pool).await
    }

    async fn checkpoint_on<'c>(&self, executor: impl PgExecutor<'c>) -> Result<FeedPosition, sqlx::Error> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT transaction_id::text, global_position FROM feed_checkpoints WHERE name = $1")
                .bind(&self.name)
                .fetch_optional(executor)
                .await?;
        Ok(row.map(|(tx, position)| FeedPosition { transaction_id: tx.parse().unwrap_or(0), global_position: position }).unwrap_or_default())
    }

    /// Records that everything up to `position` is done, committed asynchronously (no
    /// wait for the WAL flush): a position lost in a crash only means events handled
    /// again, which every reader must bear anyway.
    pub async fn save_checkpoint(&self, position: FeedPosition) -> Result<(), sqlx::Error> {
        self.save_checkpoint_asynchronously(&self.pool, position).await
    }

    async fn save_checkpoint_asynchronously<'c>(&self, executor: impl PgExecutor<'c>, position: FeedPosition) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO feed_checkpoints (name, transaction_id, global_position)
             SELECT $1, $2::text::xid8, $3 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit
             ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,
                    global_position = EXCLUDED.global_position, updated_at = now()",
        )
        .bind(&self.name)
        .bind(position.transaction_id.to_string())
        .bind(position.global_position)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Records the position on `connection`, so a reader can save it in the same
    /// transaction as what it did with the events.
    pub async fn save_checkpoint_in(&self, connection: &mut sqlx::PgConnection, position: FeedPosition) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO feed_checkpoints (name, transaction_id, global_position) VALUES ($1, $2::text::xid8, $3)
             ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,
                    global_position = EXCLUDED.global_position, updated_at = now()",
        )
        .bind(&self.name)
        .bind(position.transaction_id.to_string())
        .bind(position.global_position)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    /// Forgets the position: the reader starts again from the beginning.
    pub async fn reset(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM feed_checkpoints WHERE name = $1").bind(&self.name).execute(&self.pool).await?;
        Ok(())
    }

    /// The id the next transaction will get: every transaction that gets an id from
    /// now on is above it.
    pub async fn next_transaction_id(&self) -> Result<u64, sqlx::Error> {
        let next: String = sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetch_one(&self.pool).await?;
        Ok(next.parse().unwrap_or(u64::MAX))
    }

    /// Whether every transaction with an id below `horizon` has ended, so that the feed
    /// now shows all the events they committed.
    pub async fn has_passed(&self, horizon: u64) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8")
            .bind(horizon.to_string())
            .fetch_one(&self.pool)
            .await
    }

    /// Up to `limit` committed events after `after`, in feed order.
    pub async fn read_after(&self, after: FeedPosition, limit: i64) -> Result<Vec<FeedEvent>, sqlx::Error> {
        Ok(self.read_page(after, limit).await?.events)
    }

    /// Up to `limit` committed events after `after`, in feed order, and whether more
    /// are committed but held back by an older open transaction.
    pub async fn read_page(&self, after: FeedPosition, limit: i64) -> Result<FeedPage, sqlx::Error> {
        self.read_page_on(&self.pool, after, limit).await
    }

    async fn read_page_on<'c>(&self, executor: impl PgExecutor<'c>, after: FeedPosition, limit: i64) -> Result<FeedPage, sqlx::Error> {
        let rows: Vec<FeedRow> = sqlx::query_as(
            // One snapshot for both parts. The outer row always exists, so the flag comes
            // back with an empty page too; its subquery is ordered so that it walks the
            // commit-order index (as an EXISTS it was planned as a table scan). Ordered
            // by the columns themselves: a bare
            // `transaction_id` would name the text output column, and text order is not
            // transaction order.
            "SELECT horizon.held_back, e.transaction_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id,
                    e.sequence, e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at
               FROM (SELECT (SELECT transaction_id FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
                              ORDER BY transaction_id LIMIT 1) IS NOT NULL AS held_back) horizon
               LEFT JOIN LATERAL (
                    SELECT e.transaction_id::text AS transaction_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id,
                           e.sequence, e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at
                      FROM events e
                     WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2)
                       AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                     ORDER BY e.transaction_id, e.global_position
                     LIMIT $3) e ON true",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(executor)
        .await?;
        let held_back = rows.first().is_some_and(|row| row.0);
        let events = rows
            .into_iter()
            .filter_map(|(_, tx, global_position, event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)| {
                Some(FeedEvent {
                    position: FeedPosition { transaction_id: tx?.parse().unwrap_or(0), global_position: global_position? },
                    event_id: event_id?,
                    aggregate_type: aggregate_type?,
                    aggregate_id: aggregate_id?,
                    sequence: sequence?,
                    event_type: event_type?,
                    event_version: event_version?,
                    payload: payload?.0,
                    metadata: metadata?.0,
                    recorded_at: recorded_at?,
                })
            })
            .collect();
        Ok(FeedPage { events, held_back })
    }

    /// How many committed events lie after `after` (the reader's lag).
    pub async fn lag(&self, after: FeedPosition) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)")
            .bind(after.transaction_id.to_string())
            .bind(after.global_position)
            .fetch_one(&self.pool)
            .await
    }

    /// A wake-up source for [`Feed::follow`]: the notifier, if any, and the poll.
    async fn waiter(&self) -> FeedWaiter {
        let Some(notifier) = &self.woken_by else { return FeedWaiter { local: None, remote: None, poll: self.poll } };
        let remote = match PgListener::connect_with(&self.pool).await {
            Ok(mut listener) => match listener.listen(notifier.channel_name()).await {
                Ok(()) => Some((listener, notifier.clone())),
                Err(error) => {
                    tracing::warn!(%error, feed = %self.name, "cannot LISTEN for commits of other processes; polling for them");
                    None
                }
            },
            Err(error) => {
                tracing::warn!(%error, feed = %self.name, "cannot LISTEN for commits of other processes; polling for them");
                None
            }
        };
        FeedWaiter { local: Some(notifier.subscribe()), remote, poll: self.poll }
    }
}

impl Feed {
    /// Hands every committed event, batch by batch in feed order, to `handle`, and
    /// saves the position after each batch `handle` finished; runs until `shutdown`,
    /// then finishes the batch in hand.
    ///
    /// A failed batch is retried from the saved position (with backoff), so `handle`
    /// sees every event at least once and must be idempotent. Only one follower per
    /// feed name and schema runs at a time (a PostgreSQL advisory lock); others wait
    /// and take over when it stops.
    pub async fn follow<F, Fut>(&self, batch_size: i64, shutdown: &CancellationToken, handle: F)
    where
        F: FnMut(Vec<FeedEvent>) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        self.follow_pipelined(batch_size, 1, shutdown, handle).await;
    }

    /// Like [`Feed::follow`], with up to `in_flight` batches handled at once: the next
    /// batch is read and handed over while earlier ones are still being handled (a
    /// relay reads on while the broker acknowledges). `start` is called in feed order
    /// and must begin the work at once (queue the messages, say), returning a future
    /// that completes when it is done; positions are saved in feed order, each once
    /// its batch and every batch before it are done. A failure drops the batches in
    /// flight and starts again after the saved position.
    pub async fn follow_pipelined<F, Fut>(&self, batch_size: i64, in_flight: usize, shutdown: &CancellationToken, mut start: F)
    where
        F: FnMut(Vec<FeedEvent>) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        let depth = in_flight.max(1);
        // Leading means holding the feed's advisory lock on a connection; the follower
        // reads and saves its position on that connection (no pool round trips), and
        // should it fail, lets go and leads again (or stands by, if another instance
        // took over meanwhile).
        while let Some(mut leadership) = self.lead(shutdown).await {
            tracing::info!(feed = %self.name, "following the event feed");
            let position = match self.checkpoint_on(&mut *leadership).await {
                Ok(position) => position,
                Err(error) => {
                    tracing::warn!(%error, feed = %self.name, "cannot read the feed position; leading again");
                    let _ = leadership.close().await;
                    sleep_or_cancel(Duration::from_secs(1), shutdown).await;
                    continue;
                }
            };
            let (reached, position_seen) = watch::channel(position);
            let lag_stops = shutdown.child_token();
            let follow = async {
                let ended = self.follow_from(&mut leadership, position, reached, batch_size, depth, shutdown, &mut start).await;
                lag_stops.cancel();
                ended
            };
            let (ended, ()) = tokio::join!(follow, self.report_lag(position_seen, &lag_stops));
            // Closing the session gives up the lock at once (a connection given back to
            // the pool would keep holding it).
            let _ = leadership.close().await;
            match ended {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, feed = %self.name, "the feed connection failed; leading again");
                    if sleep_or_cancel(Duration::from_secs(1), shutdown).await {
                        break;
                    }
                }
            }
        }
        tracing::info!(feed = %self.name, "stopped following the event feed");
    }

    /// The follower's loop, from `saved`, reading and saving on `connection`;
    /// publishes every position it saved on `reached`. Returns at shutdown, once the
    /// batches in flight are done, or when `connection` fails.
    #[allow(clippy::too_many_arguments)]
    async fn follow_from<F, Fut>(
        &self,
        connection: &mut PgConnection,
        mut saved: FeedPosition,
        reached: watch::Sender<FeedPosition>,
        batch_size: i64,
        depth: usize,
        shutdown: &CancellationToken,
        start: &mut F,
    ) -> Result<(), sqlx::Error>
    where
        F: FnMut(Vec<FeedEvent>) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        let mut waiter = self.waiter().await;
        // The batches handed over and not yet done, oldest first, each with its last
        // position; everything up to `handed` has been handed over.
        let mut batches = FuturesOrdered::new();
        let mut handed = saved;
        let mut failures = 0u32;
        let mut held_back_wait = HELD_BACK_WAIT;
        let mut last_read = Instant::now();
        let mut next = Next::ReadAgain;
        loop {
            let stopping = shutdown.is_cancelled();
            if stopping && batches.is_empty() {
                return Ok(());
            }
            if !stopping && batches.len() < depth && next.is_due(Instant::now()) {
                last_read = Instant::now();
                let page = self.read_page_on(&mut *connection, handed, batch_size).await?;
                let full = page.events.len() as i64 == batch_size;
                if let Some(last) = page.events.last().map(|e| e.position) {
                    let work = start(page.events);
                    batches.push_back(async move { (last, work.await) });
                    handed = last;
                }
                // Committed events waiting behind an older transaction: it is usually
                // about to end, and no commit may ring for them. A follower that only
                // polls is in no hurry: it waits its poll.
                next = if full {
                    Next::ReadAgain
                } else if page.held_back && self.woken_by.is_some() {
                    Next::ReadSoon
                } else {
                    held_back_wait = HELD_BACK_WAIT;
                    Next::WaitForCommits
                };
            }
            let room = !stopping && batches.len() < depth;
            let read_at = match next {
                Next::ReadAt(at) => Some(at),
                _ => None,
            };
            tokio::select! {
                biased;
                Some((last, done)) = batches.next(), if !batches.is_empty() => match done {
                    Ok(()) => {
                        self.save_checkpoint_asynchronously(&mut *connection, last).await?;
                        saved = last;
                        reached.send_replace(last);
                        failures = 0;
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(%error, failures, feed = %self.name, "a feed batch failed; retrying from the saved position");
                        batches = FuturesOrdered::new();
                        handed = saved;
                        next = Next::ReadAgain;
                        sleep_or_cancel(failure_backoff(failures), shutdown).await;
                    }
                },
                () = std::future::ready(()), if room && next == Next::ReadAgain => {}
                () = tokio::time::sleep(held_back_wait), if room && next == Next::ReadSoon => {
                    held_back_wait = (held_back_wait * 2).min(HELD_BACK_MAX_WAIT).min(self.poll);
                    next = Next::ReadAgain;
                }
                // Under a stream of commits, read at most once per linger, so that they
                // gather into batches; after a quiet spell, read at once.
                () = waiter.wait(), if room && next == Next::WaitForCommits => next = Next::ReadAt(last_read + self.linger),
                () = tokio::time::sleep_until(read_at.unwrap_or(last_read)), if room && read_at.is_some() => next = Next::ReadAgain,
                () = shutdown.cancelled(), if !stopping => {}
            }
        }
    }

    /// Reports the lag after the latest position `position` saw, if this reader
    /// reports it, until shutdown. Measured apart from the follower's loop, so that a
    /// follower stuck on a batch (the broker away, say) shows its lag growing.
    async fn report_lag(&self, position: watch::Receiver<FeedPosition>, shutdown: &CancellationToken) {
        let Some(reader) = self.lag_reported_as else { return };
        loop {
            let started = Instant::now();
            let after = *position.borrow();
            match self.lag(after).await {
                Ok(lag) => telemetry::pipeline::record_feed_lag(reader, &self.name, u64::try_from(lag).unwrap_or(0)),
                Err(error) => tracing::debug!(%error, feed = %self.name, "cannot measure the feed lag"),
            }
            if sleep_or_cancel(LAG_INTERVAL.max(started.elapsed() * 10), shutdown).await {
                return;
            }
        }
    }

    /// Waits until this process holds the feed's advisory lock (held by the returned
    /// connection for as long as it lives), or shutdown.
    async fn lead(&self, shutdown: &CancellationToken) -> Option<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        let mut waiting_logged = false;
        loop {
            let attempt = async {
                let mut connection = self.pool.acquire().await?;
                // Advisory locks are database-wide: the schema is part of the key, so
                // the followers of services sharing a database do not exclude each other.
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext(current_schema() || ':feed:' || $1))")
                    .bind(&self.name)
                    .fetch_one(&mut *connection)
                    .await?;
                Ok::<_, sqlx::Error>(locked.then_some(connection))
            };
            match attempt.await {
                Ok(Some(connection)) => return Some(connection),
                Ok(None) if !waiting_logged => {
                    tracing::info!(feed = %self.name, "another instance follows this feed; standing by");
                    waiting_logged = true;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, feed = %self.name, "cannot take the feed lock; retrying"),
            }
            if sleep_or_cancel(Duration::from_secs(1), shutdown).await {
                return None;
            }
        }
    }
}

/// Sleeps for `duration`; true when shutdown came first.
pub async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = shutdown.cancelled() => true,
    }
}

/// Waits for new events: a commit in this process, one in another process (a
/// PostgreSQL notification), or the poll interval, whichever comes first.
struct FeedWaiter {
    local: Option<watch::Receiver<u64>>,
    remote: Option<(PgListener, CommitNotifier)>,
    poll: Duration,
}

impl FeedWaiter {
    /// Returns when there may be new events to read.
    async fn wait(&mut self) {
        let local = async {
            let Some(commits) = &mut self.local else { return std::future::pending().await };
            if commits.changed().await.is_err() {
                // Nothing can ring any more (the service is stopping): poll only.
                std::future::pending::<()>().await;
            }
        };
        let remote = async {
            let Some((listener, notifier)) = &mut self.remote else { return std::future::pending().await };
            loop {
                match listener.try_recv().await {
                    // This process's own commits ring locally already.
                    Ok(Some(notification)) if notifier.is_own(notification.payload()) => continue,
                    // Another process committed, or the connection was re-established
                    // (notifications may have been missed meanwhile).
                    Ok(_) => return,
                    Err(_) => return std::future::pending().await,
                }
            }
        };
        tokio::select! {
            () = local => {}
            () = remote => {}
            () = tokio::time::sleep(self.poll) => {}
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// When a follower reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// At once: the last page was full, or reading starts (again).
    ReadAgain,
    /// Shortly: committed events are held back by an older open transaction.
    ReadSoon,
    /// When a commit rings, or at the next poll.
    WaitForCommits,
    /// At this instant: a commit rang, and the linger since the last read ends then.
    ReadAt(Instant),
}

impl Next {
    fn is_due(self, now: Instant) -> bool {
        match self {
            Next::ReadAgain => true,
            Next::ReadAt(at) => at <= now,
            Next::ReadSoon | Next::WaitForCommits => false,
        }
    }
}

fn failure_backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(failures.min(6)))
}
