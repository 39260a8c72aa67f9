//! Reads of one view by id, coalesced, against a real PostgreSQL: many at once each
//! get their own row (or none), in far fewer statements than reads; a read asked for
//! after a write sees it; a failing database fails every read of the statement.

use chrono::{DateTime, Utc};
use domain::OrderId;
use domain::order::OrderStatus;
use futures::future::join_all;
use projections::{OrderView, OrderViews};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn pool() -> PgPool {
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, "oms", 4, &migrations::OMS).await.expect("migrated")
}

/// Stores a view row of order `id` for user `user` at version `version` (in the
/// table of the model's first generation, which `order_view` shows).
async fn store_row(pool: &PgPool, id: Uuid, user: &str, version: i64) {
    let at: DateTime<Utc> = "2024-05-01T10:00:00Z".parse().expect("a time");
    sqlx::query(
        "INSERT INTO order_view_v1 (order_id, user_id, status, items, created_at, updated_at, version)
         VALUES ($1, $2, 'PENDING', $3, $4, $4, $5)
         ON CONFLICT (order_id) DO UPDATE SET version = EXCLUDED.version",
    )
    .bind(id)
    .bind(user)
    .bind(json!([{"productId": "mug", "quantity": 1, "status": "PENDING", "reason": null}]))
    .bind(at)
    .bind(version)
    .execute(pool)
    .await
    .expect("a view row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_reads_at_once_each_get_their_own_row_in_few_statements() {
    let pool = pool().await;
    let ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        store_row(&pool, *id, &format!("user-{n}"), 1).await;
    }
    let missing = Uuid::new_v4();
    let views = OrderViews::new(pool.clone());
    // The readers start with the first read: start them before counting.
    assert!(views.get(OrderId::from(missing)).await.expect("read").is_none());

    let before = views.statements_read();
    let asked: Vec<Uuid> = ids.iter().copied().chain([missing]).chain(ids.iter().take(3).copied()).collect();
    let answers = join_all(asked.iter().map(|id| views.get(OrderId::from(*id)))).await;
    let statements = views.statements_read() - before;

    for (id, answer) in asked.iter().zip(&answers) {
        let view: &Option<OrderView> = answer.as_ref().expect("read");
        match ids.iter().position(|known| known == id) {
            Some(n) => {
                let view = view.as_ref().unwrap_or_else(|| panic!("order {id} has a view"));
                assert_eq!((view.order_id.as_uuid(), view.user_id.as_str()), (*id, format!("user-{n}").as_str()));
                assert_eq!(view.status, OrderStatus::Pending);
            }
            None => assert!(view.is_none(), "no view of {id}"),
        }
    }
    // 204 reads asked for at once: a statement takes up to 256 of them.
    assert!((1..=20).contains(&statements), "{} reads took {statements} statements", asked.len());
    eprintln!("{} reads in {statements} statements", asked.len());
}

#[tokio::test]
async fn a_read_asked_for_after_a_write_sees_it() {
    let pool = pool().await;
    let views = OrderViews::new(pool.clone());
    let id = Uuid::new_v4();
    for version in 1..=20 {
        store_row(&pool, id, "alice", version).await;
        let view = views.get(OrderId::from(id)).await.expect("read").expect("a view");
        assert_eq!(view.version, version as u64, "the read follows the write it came after");
    }
}

#[tokio::test]
async fn every_read_of_a_failing_statement_fails() {
    let pool = pool().await;
    let views = OrderViews::new(pool.clone());
    sqlx::query("ALTER VIEW order_view RENAME TO order_view_away").execute(&pool).await.expect("renamed");
    let answers = join_all((0..10).map(|_| views.get(OrderId::from(Uuid::new_v4())))).await;
    for answer in answers {
        let error = answer.expect_err("the view is gone");
        assert!(error.to_string().contains("order_view"), "the cause is the database's: {error}");
    }
    sqlx::query("ALTER VIEW order_view_away RENAME TO order_view").execute(&pool).await.expect("renamed back");
    assert!(views.get(OrderId::from(Uuid::new_v4())).await.expect("reads again").is_none());
}
