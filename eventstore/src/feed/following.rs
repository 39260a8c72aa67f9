//! Following the feed: a leader hands every committed event, batch by batch in feed
//! order, to a callback, saves its position after each batch, and reports its lag.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use migrations::Pooled;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::leadership::{LEADERSHIP_KEEPALIVE, Leadership, LeadershipLost, abandon, within_timeout};
use super::pages::lag_on;
use super::{Feed, FeedEvent, FeedPosition};
use crate::CommitNotifier;

/// How often a follower's lag is measured at most. The count reads the index of the
/// events after the position, so a follower far behind waits longer between two
/// counts: at least ten times what the last one took.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest wait before reading again when events are held back by an older open
/// transaction; it doubles while they stay held back, up to [`HELD_BACK_MAX_WAIT`]
/// (or the poll interval, if shorter).
const HELD_BACK_WAIT: Duration = Duration::from_millis(1);
const HELD_BACK_MAX_WAIT: Duration = Duration::from_millis(50);

/// While batches keep ending, a follower saves its position at most this often (once
/// at once after a quiet spell, then the latest when the interval is up): a save is a
/// statement and a commit, worth sparing per small batch, and all it protects is the
/// work of this long being done again after a crash, which every reader bears anyway.
const SAVE_INTERVAL: Duration = Duration::from_millis(100);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Feed {
    /// Hands every committed event, batch by batch in feed order, to `handle`, and
    /// saves the position as batches finish (at once after a quiet spell, at most
    /// once per [`SAVE_INTERVAL`] while they keep finishing); runs until `shutdown`,
    /// then finishes the batch in hand and saves.
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
        // Commits of this process are announced to others only while a follower here
        // does not lead (see [`CommitNotifier`]).
        let _following = self.woken_by.as_ref().map(CommitNotifier::count_following);
        // Leading means holding the feed's advisory lock on a connection; the follower
        // reads and saves its position on that connection (no pool round trips), and
        // should it fail or hang, lets go and leads again (or stands by, if another
        // instance took over meanwhile). Each leadership starts from the position saved
        // in the database, never from one remembered here: a save lost with the
        // connection means a batch handled again, never one skipped.
        while let Some(mut leadership) = self.lead(shutdown).await {
            tracing::info!(feed = %self.name, "following the event feed");
            let _leading = self.woken_by.as_ref().map(CommitNotifier::count_leading);
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
            let follower = Follower {
                feed: self,
                leadership: &mut leadership,
                batch_size,
                depth,
                start: &mut start,
                reached,
                shutdown,
            };
            let follow = async {
                let ended = follower.run(position).await;
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

    /// [`Feed::lag`] on a connection of its own, bounded in time like every statement of
    /// a leader ([`within_timeout`]); a connection that does not answer in time is
    /// dropped, not given back to the pool.
    async fn lag_within_timeout(&self, after: FeedPosition) -> Result<i64, LeadershipLost> {
        let mut connection =
            within_timeout("taking a connection for the lag count", Pooled::acquire(&self.pool)).await?;
        let counted = within_timeout("counting the lag", lag_on(&mut connection, after)).await;
        if counted.is_err() {
            abandon(connection.into_inner());
        }
        counted
    }

    /// A wake-up source for [`Feed::follow`]: the notifier, if any, and the poll.
    async fn waiter(&self) -> FeedWaiter {
        let polling_alone = self.poll.unwrap_or(super::POLL);
        let Some(notifier) = &self.woken_by else {
            return FeedWaiter { local: None, remote: None, poll: polling_alone };
        };
        let listening = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(notifier.channel_name()).await?;
            Ok(listener)
        };
        let (remote, poll) = match within_timeout("listening for commits", listening).await {
            Ok(listener) => (Some((listener, notifier.clone())), self.poll.unwrap_or(super::POLL_WHEN_WOKEN)),
            Err(error) => {
                tracing::warn!(%error, feed = %self.name, "cannot LISTEN for commits of other processes; polling for them");
                (None, polling_alone)
            }
        };
        FeedWaiter { local: Some(notifier.subscribe()), remote, poll }
    }
}

/// One leadership's follower: what its loop reads with, hands batches to and reports on.
struct Follower<'a, F> {
    feed: &'a Feed,
    /// Reads and saves on its connection.
    leadership: &'a mut Leadership,
    /// The most events a batch holds.
    batch_size: i64,
    /// The most batches handed over and not yet done (at least one).
    depth: usize,
    /// Begins the work on a batch (see [`Feed::follow_pipelined`]).
    start: &'a mut F,
    /// Every position saved, for the lag reports.
    reached: watch::Sender<FeedPosition>,
    shutdown: &'a CancellationToken,
}

impl<F, Fut> Follower<'_, F>
where
    F: FnMut(Vec<FeedEvent>) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    /// The follower's loop, from `saved`, reading and saving on the leader's
    /// connection; publishes every position it saved on `reached`. Returns at
    /// shutdown, once the batches in flight are done and the last position saved, or
    /// when the connection fails or stops answering.
    async fn run(mut self, saved: FeedPosition) -> Result<(), LeadershipLost> {
        let mut waiter = self.feed.waiter().await;
        // The batches handed over and not yet done, oldest first, each with its last
        // position; everything up to `handed` has been handed over, everything up to
        // `done` is done, and saved unless a save is pending.
        let mut batches = FuturesOrdered::new();
        let mut handed = saved;
        let mut done = saved;
        let mut save = Save::Idle { last: None };
        let mut failures = 0u32;
        let mut held_back_wait = HELD_BACK_WAIT;
        let mut last_read = Instant::now();
        let mut next = Next::ReadAgain;
        loop {
            let stopping = self.shutdown.is_cancelled();
            if stopping && batches.is_empty() {
                if let Save::Pending { .. } = save {
                    self.save(done).await?;
                }
                return Ok(());
            }
            if !stopping && batches.len() < self.depth && next.is_due(Instant::now()) {
                last_read = Instant::now();
                let page = self.leadership.read_page(handed, self.batch_size).await?;
                let full = page.events.len() as i64 == self.batch_size;
                if let Some(last) = page.events.last().map(|e| e.position) {
                    let work = (self.start)(page.events);
                    batches.push_back(async move { (last, work.await) });
                    handed = last;
                }
                // Committed events waiting behind an older transaction: it is usually
                // about to end, and no commit may ring for them. A follower that only
                // polls is in no hurry: it waits its poll.
                next = if full {
                    Next::ReadAgain
                } else if page.held_back && self.feed.woken_by.is_some() {
                    Next::ReadSoon
                } else {
                    held_back_wait = HELD_BACK_WAIT;
                    Next::WaitForCommits
                };
            }
            let room = !stopping && batches.len() < self.depth;
            let read_at = match next {
                Next::ReadAt(at) => Some(at),
                _ => None,
            };
            let keep_alive_at = self.leadership.last_used + LEADERSHIP_KEEPALIVE;
            let save_at = match save {
                Save::Pending { at } => Some(at),
                Save::Idle { .. } => None,
            };
            tokio::select! {
                biased;
                Some((last, result)) = batches.next(), if !batches.is_empty() => match result {
                    Ok(()) => {
                        done = last;
                        failures = 0;
                        save = match save {
                            Save::Idle { last: Some(at) } if at.elapsed() < SAVE_INTERVAL => Save::Pending { at: at + SAVE_INTERVAL },
                            Save::Idle { .. } => self.save(done).await?,
                            pending @ Save::Pending { .. } => pending,
                        };
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(%error, failures, feed = %self.feed.name, "a feed batch failed; retrying after the last batch done");
                        batches = FuturesOrdered::new();
                        handed = done;
                        next = Next::ReadAgain;
                        sleep_or_cancel(failure_backoff(failures), self.shutdown).await;
                    }
                },
                () = tokio::time::sleep_until(save_at.unwrap_or(last_read)), if save_at.is_some() => save = self.save(done).await?,
                () = std::future::ready(()), if room && next == Next::ReadAgain => {}
                () = tokio::time::sleep(held_back_wait), if room && next == Next::ReadSoon => {
                    held_back_wait = (held_back_wait * 2).min(HELD_BACK_MAX_WAIT).min(self.feed.poll.unwrap_or(super::POLL));
                    next = Next::ReadAgain;
                }
                // Under a stream of commits, read at most once per linger, so that they
                // gather into batches; after a quiet spell, read at once.
                () = waiter.wait(), if room && next == Next::WaitForCommits => next = Next::ReadAt(last_read + self.feed.linger),
                () = tokio::time::sleep_until(read_at.unwrap_or(last_read)), if room && read_at.is_some() => next = Next::ReadAgain,
                // Waiting for batches (a broker away) or for commits, the connection
                // idles: say something, so that the session lives and a dead one shows.
                () = tokio::time::sleep_until(keep_alive_at) => self.leadership.keep_alive().await?,
                () = self.shutdown.cancelled(), if !stopping => {}
            }
        }
    }
}

impl<F> Follower<'_, F> {
    /// Saves `position` on the leader's connection and tells the lag reports.
    async fn save(&mut self, position: FeedPosition) -> Result<Save, LeadershipLost> {
        self.leadership.save_checkpoint(self.feed, position).await?;
        self.reached.send_replace(position);
        Ok(Save::Idle { last: Some(Instant::now()) })
    }
}

/// Where saving the follower's position stands.
#[derive(Debug, Clone, Copy)]
enum Save {
    /// Everything done is saved; `last` is when it last saved, if it did.
    Idle { last: Option<Instant> },
    /// Batches ended since the last save; the next is due `at`.
    Pending { at: Instant },
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
