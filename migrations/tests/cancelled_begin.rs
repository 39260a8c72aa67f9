//! A transaction whose `BEGIN` is cut short (its future dropped while the answer is on
//! its way) must not leave its pooled connection inside a transaction: the next
//! borrower's writes would run in it, uncommitted whatever they were told (see
//! `migrations::Pooled`).

use futures::FutureExt;
use migrations::Pooled;
use migrations::testing::{create_database, drop_database};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};

/// Sends `connection` a statement that answers after 200 ms, and leaves it running:
/// a `BEGIN` sent next is answered after it, so a `BEGIN` polled once is cut short
/// with its answer on the way (as on a slow database), whatever the machine's speed.
fn slow_down(connection: &mut sqlx::PgConnection) {
    let sleeping = sqlx::query("SELECT pg_sleep(0.2)").execute(connection).now_or_never();
    assert!(sleeping.is_none(), "pg_sleep answered at once");
}

/// A pool of one connection on a new database with an empty table `written`, so
/// that every borrower gets the same connection.
async fn one_connection_pool() -> (String, PgPool) {
    let url = create_database().await.expect("a test database");
    let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.expect("a pool");
    sqlx::query("CREATE TABLE written (id int)").execute(&pool).await.expect("a table");
    (url, pool)
}

/// Writes a row through the pool, as the next borrower, and says whether a session
/// of its own sees it: whether the write was committed.
async fn next_write_committed(url: &str, pool: &PgPool) -> bool {
    sqlx::query("INSERT INTO written VALUES (1)").execute(pool).await.expect("the next borrower's write");
    let mut other = sqlx::PgConnection::connect(url).await.expect("another session");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM written").fetch_one(&mut other).await.expect("a count");
    other.close().await.ok();
    rows == 1
}

#[tokio::test]
async fn a_write_after_a_begin_cut_short_is_committed() {
    let (url, pool) = one_connection_pool().await;
    {
        let mut connection = Pooled::acquire(&pool).await.expect("a connection");
        slow_down(&mut connection);
        assert!(connection.begin().now_or_never().is_none(), "BEGIN answered at once on a busy session");
    }
    assert!(next_write_committed(&url, &pool).await, "the write ran inside the transaction the cut BEGIN left open");
    pool.close().await;
    drop_database(&url).await.expect("dropped");
}

/// Why `Pooled` exists. Should this fail, sqlx no longer leaves the session in a
/// transaction (fixed upstream in 0.9.1): `Pooled` can go, and this test with it.
#[tokio::test]
#[expect(clippy::disallowed_methods, reason = "sqlx's own begin, to show what it does")]
async fn sqlx_s_own_begin_cut_short_leaves_the_next_write_uncommitted() {
    let (url, pool) = one_connection_pool().await;
    {
        let mut connection = pool.acquire().await.expect("a connection");
        slow_down(&mut connection);
        assert!(
            Connection::begin(&mut *connection).now_or_never().is_none(),
            "BEGIN answered at once on a busy session"
        );
    }
    assert!(!next_write_committed(&url, &pool).await, "sqlx rolled the cut BEGIN back: Pooled is no longer needed");
    pool.close().await;
    drop_database(&url).await.expect("dropped");
}
