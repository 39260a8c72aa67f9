//! Transactions on pooled connections that a cancelled caller cannot leave open.
//!
//! sqlx 0.8.6 counts a transaction as begun only once the server has answered its
//! `BEGIN`. A future dropped while that answer is on its way (a request timed out or
//! whose client went away, a `select!` or a timeout around the work) leaves the
//! session inside a transaction sqlx does not know of, and the pool hands the
//! connection to the next borrower: their statements run inside it, uncommitted
//! whatever they were told, held back from the commit-ordered feed, and lost if it
//! rolls back; after any error there, every statement on that connection fails
//! (`current transaction is aborted`) until the connection is recycled. Seen here
//! while the database refused writes: one connection failed 1,143 requests over 15 s
//! (most likely the feed's lag count, cut short whenever its leader gave up).
//! Upstream: transact-rs/sqlx issue 4393, fixed in sqlx 0.9.1. Until the workspace
//! moves to it, every transaction begins through [`Pooled::begin`]: a connection whose
//! `BEGIN` was cut short is closed (the server rolls back what it began), never pooled.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use sqlx::{Connection, Transaction};

/// A connection taken from the pool, that goes back to it unless a [`Pooled::begin`]
/// on it was cut short: then it is closed. Hold it in the future that may be
/// cancelled, as a local, so that it is dropped with that future.
#[derive(Debug)]
pub struct Pooled {
    /// Always present until [`Pooled::into_inner`] takes it.
    connection: Option<PoolConnection<Postgres>>,
    /// A `BEGIN` was sent and its answer not yet read: the session may be inside a
    /// transaction that nothing will end.
    beginning: bool,
}

impl Pooled {
    /// A connection from `pool`.
    pub async fn acquire(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(Self::from(pool.acquire().await?))
    }

    /// Begins a transaction (rolled back when dropped uncommitted, as any sqlx
    /// transaction). Cut short, or failed, it leaves this connection to be closed.
    #[expect(clippy::disallowed_methods, reason = "the one place sqlx's begin is guarded")]
    pub async fn begin(&mut self) -> Result<Transaction<'_, Postgres>, sqlx::Error> {
        self.beginning = true;
        let connection: &mut PgConnection = self.connection.as_deref_mut().expect(PRESENT);
        let transaction = Connection::begin(connection).await?;
        self.beginning = false;
        Ok(transaction)
    }

    /// The pool's connection itself, for a caller that disposes of it otherwise
    /// (detaching it, say). Only between transactions.
    pub fn into_inner(mut self) -> PoolConnection<Postgres> {
        self.connection.take().expect(PRESENT)
    }
}

const PRESENT: &str = "a Pooled holds its connection until into_inner";

impl From<PoolConnection<Postgres>> for Pooled {
    fn from(connection: PoolConnection<Postgres>) -> Self {
        Self { connection: Some(connection), beginning: false }
    }
}

impl Deref for Pooled {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.connection.as_deref().expect(PRESENT)
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.connection.as_deref_mut().expect(PRESENT)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.beginning
            && let Some(connection) = &mut self.connection
        {
            connection.close_on_drop();
        }
    }
}
