//! Waking feed readers when events commit, without a `NOTIFY` in the writing
//! transaction.
//!
//! PostgreSQL serializes the commits of every transaction that notifies, cluster-wide,
//! under a lock held until its commit record is flushed: a trigger notifying from each
//! append would switch group commit off for all writers. So a writer rings a
//! [`CommitNotifier`] after it committed: readers in the same process wake at once
//! (through memory), readers in other processes (other instances of the service)
//! through a `NOTIFY` that a background task sends in a transaction of its own, with
//! asynchronous commit, at most one per [`CommitNotifier::NOTIFY_INTERVAL`].
//! Readers also poll, so a lost wake-up only delays.
//!
//! Only the leader of a feed reads it, and leaders elsewhere are the only ones a
//! `NOTIFY` can serve. So while every follower this notifier wakes leads its feed in
//! this process (one instance, or the instance that took every lead), nothing is
//! sent: a transaction and a wake-up of every listening session saved per burst of
//! commits. A follower elsewhere that leads a feed this process does not follow (a
//! differently built service on the same schema) then finds these commits by polling.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;

/// Tells the readers of one schema's feed that events were committed.
#[derive(Debug, Clone)]
pub struct CommitNotifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// How many commits this process rang for; readers wait for it to change.
    commits: watch::Sender<u64>,
    /// The PostgreSQL channel of the schema.
    channel: String,
    /// This process's notifications carry it, so its own readers skip them.
    origin: String,
    /// Who in this process reads the feed, shared with the task that notifies.
    followers: Arc<Followers>,
}

/// The followers of this process that a notifier wakes: how many follow, and how many
/// of those lead their feed.
#[derive(Debug, Default)]
struct Followers {
    following: AtomicUsize,
    leading: AtomicUsize,
}

impl Followers {
    /// Whether a follower in another process may lead a feed and need to hear of this
    /// process's commits: unless every follower here leads (and there is one).
    fn others_may_lead(&self) -> bool {
        let following = self.following.load(Ordering::Acquire);
        following == 0 || self.leading.load(Ordering::Acquire) < following
    }

    /// The count of followers that lead, or of all that follow.
    fn counter(&self, leading: bool) -> &AtomicUsize {
        if leading { &self.leading } else { &self.following }
    }
}

/// Counts a follower as following, or as leading, for as long as it lives.
#[derive(Debug)]
pub(crate) struct Counted {
    followers: Arc<Followers>,
    leading: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.followers.counter(self.leading).fetch_sub(1, Ordering::AcqRel);
    }
}

impl CommitNotifier {
    /// Most notifications sent to other processes per interval: they wake other
    /// instances' relays, which then read everything committed meanwhile.
    pub const NOTIFY_INTERVAL: Duration = Duration::from_millis(5);

    /// A notifier for the feed of `schema` in `pool`'s database. Starts the task that
    /// notifies other processes; it ends when the last clone of the notifier is dropped.
    pub fn new(pool: PgPool, schema: &str) -> Self {
        let (commits, rung) = watch::channel(0);
        let inner = Arc::new(Inner {
            commits,
            channel: Self::channel(schema),
            origin: uuid::Uuid::new_v4().to_string(),
            followers: Arc::default(),
        });
        tokio::spawn(notify_other_processes(
            pool,
            inner.channel.clone(),
            inner.origin.clone(),
            inner.followers.clone(),
            rung,
        ));
        Self { inner }
    }

    /// The PostgreSQL channel on which commits in `schema` are announced.
    pub fn channel(schema: &str) -> String {
        format!("events_committed:{schema}")
    }

    /// Rings: events were just committed.
    pub fn committed(&self) {
        self.inner.commits.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A receiver that changes on every commit of this process.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    pub(crate) fn channel_name(&self) -> &str {
        &self.inner.channel
    }

    /// Counts a follower this notifier wakes, until the returned guard is dropped.
    pub(crate) fn count_following(&self) -> Counted {
        self.count(false)
    }

    /// Counts one of those followers as leading its feed, until the guard is dropped.
    pub(crate) fn count_leading(&self) -> Counted {
        self.count(true)
    }

    fn count(&self, leading: bool) -> Counted {
        self.inner.followers.counter(leading).fetch_add(1, Ordering::AcqRel);
        Counted { followers: self.inner.followers.clone(), leading }
    }

    /// Whether a notification's payload came from this process.
    pub(crate) fn is_own(&self, payload: &str) -> bool {
        payload == self.inner.origin
    }
}

/// Sends one `NOTIFY` per burst of commits while followers elsewhere may lead, until
/// the notifier is dropped, on a connection of its own (taken out of the pool: every
/// connection given back to the pool costs a round trip).
async fn notify_other_processes(
    pool: PgPool,
    channel: String,
    origin: String,
    followers: Arc<Followers>,
    mut rung: watch::Receiver<u64>,
) {
    let mut connection: Option<PgConnection> = None;
    while rung.changed().await.is_ok() {
        rung.borrow_and_update();
        if !followers.others_may_lead() {
            continue;
        }
        if connection.is_none() {
            connection = pool
                .acquire()
                .await
                .map(PoolConnection::detach)
                .inspect_err(|error| tracing::debug!(%error, "no connection to notify on"))
                .ok();
        }
        if let Some(open) = &mut connection {
            // Its own transaction, committed asynchronously: the notification lock is
            // held for microseconds, not for a WAL flush.
            let sent = sqlx::query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)")
                .bind(&channel)
                .bind(&origin)
                .execute(&mut *open)
                .await;
            if let Err(error) = sent {
                tracing::debug!(%error, %channel, "cannot notify other processes of a commit; they will poll");
                connection = None;
            }
        }
        tokio::time::sleep(CommitNotifier::NOTIFY_INTERVAL).await;
    }
}
