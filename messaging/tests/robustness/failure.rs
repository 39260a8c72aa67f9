//! The classifier on real errors of PostgreSQL and sqlx, also wrapped as the event
//! store and handlers wrap them.

use std::time::Duration;

use anyhow::Context;
use messaging::failure::{Failure, classify, sqlstate};
use sqlx::postgres::PgPoolOptions;

use crate::support::database;

/// The error of `sql` on `pool`, wrapped as a handler does.
async fn error_of(pool: &sqlx::PgPool, sql: &str, bind: Option<&str>) -> anyhow::Error {
    let mut query = sqlx::query(sql);
    if let Some(value) = bind {
        query = query.bind(value);
    }
    let error = query.execute(pool).await.expect_err(sql);
    anyhow::Error::from(error).context("handling a batch")
}

#[tokio::test]
async fn data_the_database_refuses_is_permanent_with_its_sqlstate() {
    let pool = database().await;
    sqlx::query("CREATE TABLE notes (id text PRIMARY KEY, short varchar(3), body jsonb, big text)")
        .execute(&pool)
        .await
        .expect("table");
    sqlx::query("CREATE INDEX notes_big ON notes (big)").execute(&pool).await.expect("index");
    sqlx::query("INSERT INTO notes (id) VALUES ('taken')").execute(&pool).await.expect("row");
    // Incompressible, so that it cannot fit in a B-tree entry (SQLSTATE 54000).
    let huge: String = (0..400).map(|i| format!("{:x}", md5_like(i))).collect();
    let cases = [
        (
            "a NUL character in jsonb",
            "INSERT INTO notes (id, body) VALUES ('n', $1::jsonb)",
            Some(r#"{"correlationId": "a\u0000b"}"#),
            "22P05",
        ),
        ("a value too long", "INSERT INTO notes (id, short) VALUES ('l', $1)", Some("too long"), "22001"),
        ("malformed json", "INSERT INTO notes (id, body) VALUES ('m', $1::jsonb)", Some("{not json"), "22P02"),
        ("a unique violation", "INSERT INTO notes (id) VALUES ($1)", Some("taken"), "23505"),
        ("an index row too large", "INSERT INTO notes (id, big) VALUES ('b', $1)", Some(huge.as_str()), "54000"),
        (
            "two upserts of one row",
            "INSERT INTO notes (id) VALUES ('x'), ('x') ON CONFLICT (id) DO UPDATE SET short = 'a'",
            None,
            "21000",
        ),
    ];
    for (label, sql, bind, code) in cases {
        let error = error_of(&pool, sql, bind).await;
        assert_eq!(sqlstate(&error).as_deref(), Some(code), "{label}: {error:#}");
        assert_eq!(classify(&error), Failure::Permanent, "{label}: {error:#}");
    }
}

/// A pseudo-random 128-bit number per `i` (no crate needed for test data).
fn md5_like(i: u64) -> u128 {
    let mut x = u128::from(i).wrapping_add(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834);
    for _ in 0..4 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD_C4CE_B9FE_1A85_EC53);
    }
    x
}

#[tokio::test]
async fn conflicts_timeouts_and_lost_connections_are_transient() {
    let pool = database().await;
    let raised = |code: &str| format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$");
    for code in ["40001", "40P01", "53300", "57P01", "08006"] {
        let error = error_of(&pool, &raised(code), None).await;
        assert_eq!(sqlstate(&error).as_deref(), Some(code));
        assert_eq!(classify(&error), Failure::Transient, "SQLSTATE {code}");
    }

    // A statement timeout (57014).
    let mut connection = pool.acquire().await.expect("a connection");
    sqlx::query("SET statement_timeout = 50").execute(&mut *connection).await.expect("set");
    let error = sqlx::query("SELECT pg_sleep(2)").execute(&mut *connection).await.expect_err("timed out");
    let error = anyhow::Error::from(error).context("handling");
    assert_eq!(sqlstate(&error).as_deref(), Some("57014"));
    assert_eq!(classify(&error), Failure::Transient);
    drop(connection);

    // The pool exhausted.
    let small = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(100))
        .connect_with((*pool.connect_options()).clone())
        .await
        .expect("pool");
    let held = small.acquire().await.expect("the only connection");
    let error = small.acquire().await.expect_err("pool timed out");
    assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error}");
    assert_eq!(classify(&anyhow::Error::from(error).context("handling")), Failure::Transient);
    drop(held);

    // No server there.
    let error = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect("postgres://postgres@127.0.0.1:1/none")
        .await
        .expect_err("refused");
    assert_eq!(classify(&Err::<(), _>(error).context("connecting").unwrap_err()), Failure::Transient);
}

#[tokio::test]
async fn a_database_error_is_found_inside_the_event_store_errors() {
    let pool = database().await;
    let refused =
        sqlx::query("SELECT $1::jsonb").bind("{\"a\": \"\\u0000\"}").execute(&pool).await.expect_err("refused");
    let wrapped: eventstore::ExecuteError<std::fmt::Error> = eventstore::EventsError::Database(refused).into();
    let error = Err::<(), _>(wrapped).context("reserving stock").unwrap_err();
    assert_eq!(sqlstate(&error).as_deref(), Some("22P05"), "{error:#}");
    assert_eq!(classify(&error), Failure::Permanent);

    let lost = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
    let wrapped: eventstore::ExecuteError<std::fmt::Error> = lost.into();
    assert_eq!(classify(&anyhow::Error::from(wrapped)), Failure::Transient);
}
