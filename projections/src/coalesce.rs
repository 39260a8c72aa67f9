//! Point reads of a view coalesced into set reads.
//!
//! Every `GET` of one order or product reads one row by primary key. Done one statement
//! per request, each read also pays a pool checkout and sqlx's ping of the connection
//! when it goes back to the pool: two round trips and two server wake-ups for one row,
//! and under load the service and the database spend more on those than on the reads.
//! Here the reads that arrive while others are under way wait for the next statement,
//! which reads them all at once (`= ANY($1)`): alone a read costs what it did; under
//! load one statement serves many requests. A read never sees older data than it
//! would have alone: its statement starts after it was asked for.
//!
//! Each reader keeps a connection of its own, taken out of the pool (so the readers
//! hold [`READERS`] connections beyond the pool's maximum): a pooled connection is
//! pinged by sqlx each time it goes back, a second round trip per statement that
//! cost the service about 6% of a `GET`'s instructions (callgrind) and the database a
//! wake-up. A read that fails on a kept connection is tried once more on a new one
//! (see [`read_many`]), so a restarted database is reconnected to as the pool would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use sqlx::{PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{ProjectionError, ViewTable};

/// How many statements may run at once: enough to keep reading while one waits on
/// the network, few enough to leave the pool to the writers.
const READERS: usize = 2;

/// Most reads one statement serves.
const MOST_PER_STATEMENT: usize = 256;

/// A read asked for: the id, and where its answer goes.
type Read<V> = (String, oneshot::Sender<Result<Option<V>, ProjectionError>>);

/// The reads waiting for a statement, shared by the readers.
type Waiting<V> = Arc<Mutex<mpsc::UnboundedReceiver<Read<V>>>>;

/// Reads of one view by id, coalesced (see the module's documentation).
pub struct CoalescedReads<T: ViewTable> {
    pool: PgPool,
    /// Started at the first read, so that building one needs no runtime.
    queue: OnceLock<mpsc::UnboundedSender<Read<T::View>>>,
    statements: Arc<AtomicU64>,
}

impl<T: ViewTable> std::fmt::Debug for CoalescedReads<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoalescedReads").field("model", &T::MODEL).finish_non_exhaustive()
    }
}

impl<T: ViewTable> CoalescedReads<T>
where
    T::View: Clone,
{
    /// Reads of `T`'s view through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, queue: OnceLock::new(), statements: Arc::default() }
    }

    /// How many statements have served the reads so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// The view of `id`, if there is one.
    pub async fn get(&self, id: String) -> Result<Option<T::View>, ProjectionError> {
        let (answer, answered) = oneshot::channel();
        let queue = self.queue.get_or_init(|| start_readers::<T>(self.pool.clone(), self.statements.clone()));
        queue.send((id, answer)).map_err(|_| ProjectionError::Corrupt("the view's readers stopped".into()))?;
        answered.await.map_err(|_| ProjectionError::Corrupt("a view reader stopped mid-read".into()))?
    }
}

/// Starts [`READERS`] tasks that serve the reads sent to the returned queue; they end
/// once it is dropped.
fn start_readers<T: ViewTable>(pool: PgPool, statements: Arc<AtomicU64>) -> mpsc::UnboundedSender<Read<T::View>>
where
    T::View: Clone,
{
    let (queue, waiting) = mpsc::unbounded_channel();
    let waiting = Arc::new(Mutex::new(waiting));
    for _ in 0..READERS {
        tokio::spawn(serve_reads::<T>(pool.clone(), waiting.clone(), statements.clone()));
    }
    queue
}

/// Takes whatever reads wait (at least one), reads them in one statement, answers each;
/// again until the queue is dropped.
async fn serve_reads<T: ViewTable>(pool: PgPool, waiting: Waiting<T::View>, statements: Arc<AtomicU64>)
where
    T::View: Clone,
{
    let mut connection: Option<PgConnection> = None;
    loop {
        let mut reads = Vec::new();
        {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else { return };
            reads.push(first);
            while reads.len() < MOST_PER_STATEMENT
                && let Ok(read) = waiting.try_recv()
            {
                reads.push(read);
            }
        }
        let ids: Vec<&str> = reads.iter().map(|(id, _)| id.as_str()).collect();
        statements.fetch_add(1, Ordering::Relaxed);
        match read_many::<T>(&pool, &mut connection, &ids).await {
            Ok(found) => {
                for (id, answer) in reads {
                    // The asker may have gone (its request timed out): nothing to do.
                    let _ = answer.send(Ok(found.get(&id).cloned()));
                }
            }
            Err(error) => {
                connection = None;
                let error = Arc::new(error);
                for (_, answer) in reads {
                    let _ = answer.send(Err(ProjectionError::Shared(error.clone())));
                }
            }
        }
    }
}

/// Reads `ids` on the reader's own `connection`, taken from `pool` when it has none.
/// A kept connection that fails (the database restarted since it was taken, say) is
/// replaced and the read tried once more on the new one, so that no reader answers
/// with an error a fresh pooled connection would not have.
async fn read_many<T: ViewTable>(
    pool: &PgPool,
    connection: &mut Option<PgConnection>,
    ids: &[&str],
) -> Result<HashMap<String, T::View>, ProjectionError> {
    if let Some(kept) = connection {
        match T::get_many(kept, T::MODEL, ids).await {
            Ok(found) => return Ok(found),
            Err(error) => {
                tracing::debug!(model = T::MODEL, %error, "a view reader's connection failed; reading on a new one");
                *connection = None;
            }
        }
    }
    let fresh = connection.insert(pool.acquire().await?.detach());
    T::get_many(fresh, T::MODEL, ids).await
}
