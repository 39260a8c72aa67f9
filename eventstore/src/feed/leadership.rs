//! Leading a feed: one follower per feed name and schema at a time, by a PostgreSQL
//! advisory lock held on a connection of its own. That connection is watched (every
//! statement bounded in time, kept alive while idle), so a leader whose connection
//! died lets go and a standby takes over.

use std::time::Duration;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use telemetry::repeats::{REPEAT_WINDOW, Repeats, shape, with_repeats};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::checkpoints::Durability;
use super::following::sleep_or_cancel;
use super::pages::{FeedPage, read_page_on};
use super::{Feed, FeedPosition};

/// How long one statement on a leader's connection (or one lag count) may take. A
/// connection that died half-open (its traffic blackholed, not closed) answers
/// nothing and reports no error: past this, it is presumed dead, dropped (never given
/// back to the pool, where the lock would stay held) and the follower leads again.
/// Every statement there reads an index range or writes one row: seconds are plenty.
pub(super) const LEADERSHIP_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A leader that has not used its connection for this long runs a cheap statement on
/// it: that keeps its session from the server's idle timeout (a relay waiting minutes
/// for the broker must keep its lock) and finds a dead connection while it waits.
pub(super) const LEADERSHIP_KEEPALIVE: Duration = Duration::from_secs(5);

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

impl Feed {
    /// Waits until this process holds the feed's advisory lock (held by the returned
    /// connection for as long as it lives), or shutdown.
    pub(super) async fn lead(&self, shutdown: &CancellationToken) -> Option<Leadership> {
        let mut waiting_logged = false;
        // Tried every second: while the database is away, one line a minute per cause.
        let mut failures = Repeats::new(REPEAT_WINDOW);
        loop {
            match self.try_to_lead(shutdown).await {
                Ok(Some(leadership)) => return Some(leadership),
                Ok(None) if shutdown.is_cancelled() => return None,
                Ok(None) if !waiting_logged => {
                    tracing::info!(feed = %self.name, "another instance follows this feed; standing by");
                    waiting_logged = true;
                }
                Ok(None) => {}
                Err(error) => match failures.admit(shape(&error.to_string()), std::time::Instant::now()) {
                    Some(repeats) => {
                        let error = with_repeats(&error.to_string(), repeats);
                        tracing::warn!(%error, feed = %self.name, "cannot take the feed lock; retrying");
                    }
                    None => tracing::debug!(%error, feed = %self.name, "cannot take the feed lock; retrying"),
                },
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
pub(super) struct Leadership {
    connection: PoolConnection<Postgres>,
    pub(super) last_used: Instant,
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
    pub(super) async fn checkpoint(&mut self, feed: &Feed) -> Result<FeedPosition, LeadershipLost> {
        let read = within_timeout("reading the feed position", feed.checkpoint_on(&mut *self.connection)).await;
        self.used(read)
    }

    /// A page of the feed after `after`.
    pub(super) async fn read_page(&mut self, after: FeedPosition, limit: i64) -> Result<FeedPage, LeadershipLost> {
        let read = within_timeout("reading the feed", read_page_on(&mut *self.connection, after, limit)).await;
        self.used(read)
    }

    /// Saves `feed`'s position.
    pub(super) async fn save_checkpoint(&mut self, feed: &Feed, position: FeedPosition) -> Result<(), LeadershipLost> {
        let saved = within_timeout(
            "saving the feed position",
            feed.upsert_checkpoint(&mut *self.connection, position, Durability::Asynchronous),
        )
        .await;
        self.used(saved)
    }

    /// The cheapest statement there is.
    pub(super) async fn keep_alive(&mut self) -> Result<(), LeadershipLost> {
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
    pub(super) async fn close(self) {
        let _ = tokio::time::timeout(LEADERSHIP_CALL_TIMEOUT, self.connection.close()).await;
    }

    /// Drops a connection that failed or stopped answering, without a word to the
    /// server (which may never hear it): the server ends the session, and the lock
    /// with it, when the socket closes or its idle timeout strikes.
    pub(super) fn abandon(self) {
        abandon(self.connection);
    }
}

/// Drops `connection` out of the pool: its socket closes at once, and the pool opens
/// another in its place when needed.
pub(super) fn abandon(connection: PoolConnection<Postgres>) {
    drop(connection.detach());
}

/// Why a leader gave up its connection (or could not get one).
#[derive(Debug, thiserror::Error)]
pub(super) enum LeadershipLost {
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
pub(super) async fn within_timeout<T>(
    doing: &'static str,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, LeadershipLost> {
    match tokio::time::timeout(LEADERSHIP_CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(LeadershipLost::Failed { doing, error }),
        Err(_) => Err(LeadershipLost::TimedOut { doing }),
    }
}
