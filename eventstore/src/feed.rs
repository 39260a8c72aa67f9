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
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool, Postgres};
use telemetry::FeedReader;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::CommitNotifier;

/// How often a follower's lag is measured at most. The count reads the index of the
/// events after the position, so a follower far behind waits longer between two
/// counts: at least ten times what the last one took.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// How long one statement on a leader's connection (or one lag count) may take. A
/// connection that died half-open (its traffic blackholed, not closed) answers
/// nothing and reports no error: past this, it is presumed dead, dropped (never given
/// back to the pool, where the lock would stay held) and the follower leads again.
/// Every statement there reads an index range or writes one row: seconds are plenty.
const LEADERSHIP_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A leader that has not used its connection for this long runs a cheap statement on
/// it: that keeps its session from the server's idle timeout (a relay waiting minutes
/// for the broker must keep its lock) and finds a dead connection while it waits.
const LEADERSHIP_KEEPALIVE: Duration = Duration::from_secs(5);

/// Session settings of the leader's connection only (the pool's sessions keep theirs).
/// The server ends a leader session it has heard nothing from for 25 s (PostgreSQL
/// 14+), which releases the lock when the client vanished behind a blackhole: the
/// keep-alive above speaks every 5 s, so a live leader is never idle that long. TCP
/// keepalive (a probe after 10 s of silence, every 5 s, dead after 3 unanswered) and
/// the TCP user timeout (unacknowledged data for 25 s) let the server's kernel find
/// the dead peer too, also while the session waits to send a result.
const LEADER_SESSION_SETTINGS: [(&str, &str); 5] = [
    ("idle_session_timeout", "25s"),
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "25000"),
];

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
    pub fn decode<A: cqrs_es::Aggregate>(
        self,
        events: &crate::Events<A>,
    ) -> Result<cqrs_es::EventEnvelope<A>, crate::EventsError> {
        events.decode_stored(
            self.aggregate_id,
            self.sequence,
            self.event_type,
            self.event_version,
            &self.payload,
            self.metadata,
        )
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
        Self {
            pool,
            name: name.into(),
            lag_reported_as: None,
            woken_by: None,
            poll: Duration::from_millis(100),
            linger: Duration::ZERO,
        }
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
        Ok(row
            .map(|(tx, position)| FeedPosition { transaction_id: tx.parse().unwrap_or(0), global_position: position })
            .unwrap_or_default())
    }

    /// Records that everything up to `position` is done, committed asynchronously (no
    /// wait for the WAL flush): a position lost in a crash only means events handled
    /// again, which every reader must bear anyway.
    pub async fn save_checkpoint(&self, position: FeedPosition) -> Result<(), sqlx::Error> {
        self.save_checkpoint_asynchronously(&self.pool, position).await
    }

    async fn save_checkpoint_asynchronously<'c>(
        &self,
        executor: impl PgExecutor<'c>,
        position: FeedPosition,
    ) -> Result<(), sqlx::Error> {
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
    pub async fn save_checkpoint_in(
        &self,
        connection: &mut sqlx::PgConnection,
        position: FeedPosition,
    ) -> Result<(), sqlx::Error> {
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
        let next: String =
            sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetch_one(&self.pool).await?;
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

    async fn read_page_on<'c>(
        &self,
        executor: impl PgExecutor<'c>,
        after: FeedPosition,
        limit: i64,
    ) -> Result<FeedPage, sqlx::Error> {
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
            .filter_map(
                |(
                    _,
                    tx,
                    global_position,
                    event_id,
                    aggregate_type,
                    aggregate_id,
                    sequence,
                    event_type,
                    event_version,
                    payload,
                    metadata,
                    recorded_at,
                )| {
                    Some(FeedEvent {
                        position: FeedPosition {
                            transaction_id: tx?.parse().unwrap_or(0),
                            global_position: global_position?,
                        },
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
                },
            )
            .collect();
        Ok(FeedPage { events, held_back })
    }

    /// How many committed events lie after `after` (the reader's lag).
    pub async fn lag(&self, after: FeedPosition) -> Result<i64, sqlx::Error> {
        lag_on(&self.pool, after).await
    }

    /// How long ago the first committed event after `after` (in feed order) was
    /// recorded, by the database's clock; `None` when no event lies after it.
    pub async fn oldest_age_after(&self, after: FeedPosition) -> Result<Option<Duration>, sqlx::Error> {
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM clock_timestamp() - recorded_at)::float8 FROM events
              WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
              ORDER BY transaction_id, global_position LIMIT 1",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .fetch_optional(&self.pool)
        .await?;
        Ok(seconds.map(|s| Duration::try_from_secs_f64(s).unwrap_or_default()))
    }

    /// How long ago the first event after this reader's saved position was recorded;
    /// `None` when it has handled everything.
    pub async fn oldest_unhandled_age(&self) -> Result<Option<Duration>, sqlx::Error> {
        self.oldest_age_after(self.checkpoint().await?).await
    }

    /// A wake-up source for [`Feed::follow`]: the notifier, if any, and the poll.
    async fn waiter(&self) -> FeedWaiter {
        let Some(notifier) = &self.woken_by else { return FeedWaiter { local: None, remote: None, poll: self.poll } };
        let listening = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(notifier.channel_name()).await?;
            Ok(listener)
        };
        let remote = match within_timeout("listening for commits", listening).await {
            Ok(listener) => Some((listener, notifier.clone())),
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
    pub async fn follow_pipelined<F, Fut>(
        &self,
        batch_size: i64,
        in_flight: usize,
        shutdown: &CancellationToken,
        mut start: F,
    ) where
        F: FnMut(Vec<FeedEvent>) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        let depth = in_flight.max(1);
        // Leading means holding the feed's advisory lock on a connection; the follower
        // reads and saves its position on that connection (no pool round trips), and
        // should it fail or hang, lets go and leads again (or stands by, if another
        // instance took over meanwhile). Each leadership starts from the position saved
        // in the database, never from one remembered here: a save lost with the
        // connection means a batch handled again, never one skipped.
        while let Some(mut leadership) = self.lead(shutdown).await {
            tracing::info!(feed = %self.name, "following the event feed");
            let position = match leadership.checkpoint(self).await {
                Ok(position) => position,
                Err(error) => {
                    tracing::warn!(%error, feed = %self.name, "cannot read the feed position; leading again");
                    leadership.abandon();
                    sleep_or_cancel(Duration::from_secs(1), shutdown).await;
                    continue;
                }
            };
            let (reached, position_seen) = watch::channel(position);
            let lag_stops = shutdown.child_token();
            let follow = async {
                let ended =
                    self.follow_from(&mut leadership, position, reached, batch_size, depth, shutdown, &mut start).await;
                lag_stops.cancel();
                ended
            };
            let (ended, ()) = tokio::join!(follow, self.report_lag(position_seen, &lag_stops));
            match ended {
                Ok(()) => {
                    leadership.close().await;
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, feed = %self.name, "the feed connection failed; leading again");
                    leadership.abandon();
                    if sleep_or_cancel(Duration::from_secs(1), shutdown).await {
                        break;
                    }
                }
            }
        }
        tracing::info!(feed = %self.name, "stopped following the event feed");
    }

    /// The follower's loop, from `saved`, reading and saving on `leadership`'s
    /// connection; publishes every position it saved on `reached`. Returns at
    /// shutdown, once the batches in flight are done, or when the connection fails or
    /// stops answering.
    #[allow(clippy::too_many_arguments)]
    async fn follow_from<F, Fut>(
        &self,
        leadership: &mut Leadership,
        mut saved: FeedPosition,
        reached: watch::Sender<FeedPosition>,
        batch_size: i64,
        depth: usize,
        shutdown: &CancellationToken,
        start: &mut F,
    ) -> Result<(), LeadershipLost>
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
                let page = leadership.read_page(self, handed, batch_size).await?;
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
            let keep_alive_at = leadership.last_used + LEADERSHIP_KEEPALIVE;
            tokio::select! {
                biased;
                Some((last, done)) = batches.next(), if !batches.is_empty() => match done {
                    Ok(()) => {
                        leadership.save_checkpoint(self, last).await?;
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
                // Waiting for batches (a broker away) or for commits, the connection
                // idles: say something, so that the session lives and a dead one shows.
                () = tokio::time::sleep_until(keep_alive_at) => leadership.keep_alive().await?,
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
            // A count that hangs on a dead connection must not hold up the follower's
            // end (it waits for this to stop).
            let counted = tokio::select! {
                counted = self.lag_within_timeout(after) => counted,
                () = shutdown.cancelled() => return,
            };
            match counted {
                Ok(lag) => telemetry::pipeline::record_feed_lag(reader, &self.name, u64::try_from(lag).unwrap_or(0)),
                Err(error) => tracing::debug!(%error, feed = %self.name, "cannot measure the feed lag"),
            }
            if sleep_or_cancel(LAG_INTERVAL.max(started.elapsed() * 10), shutdown).await {
                return;
            }
        }
    }

    /// [`Feed::lag`] on a connection of its own, bounded by [`LEADERSHIP_CALL_TIMEOUT`];
    /// a connection that does not answer in time is dropped, not given back to the pool.
    async fn lag_within_timeout(&self, after: FeedPosition) -> Result<i64, LeadershipLost> {
        let mut connection = within_timeout("taking a connection for the lag count", self.pool.acquire()).await?;
        let counted = within_timeout("counting the lag", lag_on(&mut *connection, after)).await;
        if counted.is_err() {
            abandon(connection);
        }
        counted
    }

    /// Waits until this process holds the feed's advisory lock (held by the returned
    /// connection for as long as it lives), or shutdown.
    async fn lead(&self, shutdown: &CancellationToken) -> Option<Leadership> {
        let mut waiting_logged = false;
        loop {
            match self.try_to_lead(shutdown).await {
                Ok(Some(leadership)) => return Some(leadership),
                Ok(None) if shutdown.is_cancelled() => return None,
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

    /// One attempt at the feed's advisory lock: the leadership, or `None` when another
    /// session holds it (or shutdown came).
    async fn try_to_lead(&self, shutdown: &CancellationToken) -> Result<Option<Leadership>, LeadershipLost> {
        let mut connection = tokio::select! {
            connection = within_timeout("taking a connection", self.pool.acquire()) => connection?,
            () = shutdown.cancelled() => return Ok(None),
        };
        // Advisory locks are database-wide: the schema is part of the key, so the
        // followers of services sharing a database do not exclude each other.
        let lock = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext(current_schema() || ':feed:' || $1))")
            .bind(&self.name);
        let locked = tokio::select! {
            locked = within_timeout("taking the feed lock", lock.fetch_one(&mut *connection)) => locked,
            () = shutdown.cancelled() => Err(LeadershipLost::Stopped),
        };
        match locked {
            Ok(true) => {}
            // Untouched: the pool may have it back.
            Ok(false) => return Ok(None),
            // The lock may yet be granted to this session, should the statement reach
            // the server late: a session that cannot be trusted is dropped, so that the
            // lock goes with it, and never given back to the pool.
            Err(LeadershipLost::Stopped) => {
                abandon(connection);
                return Ok(None);
            }
            Err(error) => {
                abandon(connection);
                return Err(error);
            }
        }
        let mut leadership = Leadership { connection, last_used: Instant::now() };
        if let Err(error) = leadership.configure_session(&self.name).await {
            leadership.abandon();
            return Err(error);
        }
        Ok(Some(leadership))
    }
}

/// The connection that holds a feed's advisory lock, and when it was last used.
struct Leadership {
    connection: PoolConnection<Postgres>,
    last_used: Instant,
}

impl Leadership {
    /// Gives the leader's session its own settings (see [`LEADER_SESSION_SETTINGS`]).
    /// A server that does not know one (older than PostgreSQL 14, say) runs without it.
    async fn configure_session(&mut self, feed: &str) -> Result<(), LeadershipLost> {
        for (name, value) in LEADER_SESSION_SETTINGS {
            let set = sqlx::query("SELECT set_config($1, $2, false)").bind(name).bind(value);
            let set = within_timeout("configuring the leader's session", set.execute(&mut *self.connection)).await;
            match self.used(set) {
                Ok(_) => {}
                Err(LeadershipLost::Failed { error: sqlx::Error::Database(error), .. }) => {
                    tracing::warn!(%error, feed, setting = name, "the server refused a session setting of the feed leader; leading without it");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// The position `feed` saved.
    async fn checkpoint(&mut self, feed: &Feed) -> Result<FeedPosition, LeadershipLost> {
        let read = within_timeout("reading the feed position", feed.checkpoint_on(&mut *self.connection)).await;
        self.used(read)
    }

    /// A page of `feed` after `after`.
    async fn read_page(&mut self, feed: &Feed, after: FeedPosition, limit: i64) -> Result<FeedPage, LeadershipLost> {
        let read = within_timeout("reading the feed", feed.read_page_on(&mut *self.connection, after, limit)).await;
        self.used(read)
    }

    /// Saves `feed`'s position.
    async fn save_checkpoint(&mut self, feed: &Feed, position: FeedPosition) -> Result<(), LeadershipLost> {
        let saved = within_timeout(
            "saving the feed position",
            feed.save_checkpoint_asynchronously(&mut *self.connection, position),
        )
        .await;
        self.used(saved)
    }

    /// The cheapest statement there is.
    async fn keep_alive(&mut self) -> Result<(), LeadershipLost> {
        let answered =
            within_timeout("keeping the feed connection alive", sqlx::query("SELECT 1").execute(&mut *self.connection))
                .await;
        self.used(answered).map(drop)
    }

    /// Notes that the connection was just used, passing on what it answered.
    fn used<T>(&mut self, result: T) -> T {
        self.last_used = Instant::now();
        result
    }

    /// Ends the session gracefully, which gives up the lock at once (a connection
    /// given back to the pool would keep holding it).
    async fn close(self) {
        let _ = tokio::time::timeout(LEADERSHIP_CALL_TIMEOUT, self.connection.close()).await;
    }

    /// Drops a connection that failed or stopped answering, without a word to the
    /// server (which may never hear it): the server ends the session, and the lock
    /// with it, when the socket closes or its idle timeout strikes.
    fn abandon(self) {
        abandon(self.connection);
    }
}

/// Drops `connection` out of the pool: its socket closes at once, and the pool opens
/// another in its place when needed.
fn abandon(connection: PoolConnection<Postgres>) {
    drop(connection.detach());
}

/// Why a leader gave up its connection (or could not get one).
#[derive(Debug, thiserror::Error)]
enum LeadershipLost {
    /// A statement failed.
    #[error("{doing}: {error}")]
    Failed {
        doing: &'static str,
        #[source]
        error: sqlx::Error,
    },
    /// A statement got no answer in time: the connection is presumed dead.
    #[error("{doing}: no answer within {LEADERSHIP_CALL_TIMEOUT:?}, the connection is presumed dead")]
    TimedOut { doing: &'static str },
    /// Shutdown came first.
    #[error("shutting down")]
    Stopped,
}

/// Runs `call`, giving up after [`LEADERSHIP_CALL_TIMEOUT`].
async fn within_timeout<T>(
    doing: &'static str,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, LeadershipLost> {
    match tokio::time::timeout(LEADERSHIP_CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(LeadershipLost::Failed { doing, error }),
        Err(_) => Err(LeadershipLost::TimedOut { doing }),
    }
}

/// How many committed events lie after `after`.
async fn lag_on<'c>(executor: impl PgExecutor<'c>, after: FeedPosition) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)")
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .fetch_one(executor)
        .await
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
