//! The feed catch-up over views the commands already wrote: it reads them, finds them
//! up to date, and neither writes nor locks a row (a lock taken for nothing made it
//! deadlock with the outcome consumer, which writes the same rows in another order).

use std::time::Duration;

use domain::order::{ItemOutcome, Order, OrderCommand, OrderLine, PlaceOrder, RecordItemOutcome};
use domain::{OrderId, ProductId, Quantity, UserId};
use eventstore::{AggregateStore, Command, EventMetadata};
use projections::{OrderViews, Projector};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn pool() -> PgPool {
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, "oms", 4, &migrations::OMS).await.expect("migrated")
}

fn command(order_id: OrderId, command: OrderCommand) -> Command<Order> {
    Command {
        aggregate_id: order_id.to_string(),
        command,
        metadata: EventMetadata::new("catch-up-test", "catch-up-test", "test"),
    }
}

#[tokio::test]
async fn replaying_the_feed_over_up_to_date_views_writes_and_locks_nothing() {
    let pool = pool().await;
    let store = AggregateStore::new(pool.clone()).with_projection(Projector::<OrderViews>::live());
    let mug = ProductId::parse("mug").expect("id");
    let orders: Vec<OrderId> = (0..20).map(|_| OrderId::generate()).collect();
    let placed: Vec<Command<Order>> = orders
        .iter()
        .map(|id| {
            let items = vec![OrderLine { product_id: mug.clone(), quantity: Quantity::new(1).expect("quantity") }];
            command(
                *id,
                OrderCommand::PlaceOrder(PlaceOrder {
                    user_id: UserId::parse("u-1").expect("user"),
                    items,
                    idempotency_key: None,
                }),
            )
        })
        .collect();
    store.execute_all(&placed).await.expect("placed");
    let executed: Vec<Command<Order>> = orders
        .iter()
        .map(|id| {
            command(
                *id,
                OrderCommand::RecordItemOutcome(RecordItemOutcome {
                    product_id: mug.clone(),
                    revision: 1,
                    outcome: ItemOutcome::Executed,
                }),
            )
        })
        .collect();
    store.execute_all(&executed).await.expect("executed");

    let before = row_versions(&pool).await;
    assert_eq!(before.len(), 20, "every order has its row");
    let shutdown = CancellationToken::new();
    let follower = tokio::spawn(projections::catch_up::follow_feed(
        pool.clone(),
        "catch-up-test",
        store.events().clone(),
        Projector::<OrderViews>::live(),
        shutdown.clone(),
    ));
    // Up to 30 s: a loaded machine (the whole suite on two cores) once took more than 5.
    let mut caught_up = false;
    for _ in 0..600 {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE (transaction_id, global_position) >
                    coalesce((SELECT (transaction_id, global_position) FROM feed_checkpoints WHERE name = 'catch-up-test'), ('0'::xid8, 0))",
        )
        .fetch_one(&pool)
        .await
        .expect("lag");
        if behind == 0 {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    follower.await.expect("the follower stops");
    assert!(caught_up, "the catch-up read the whole feed");

    assert_eq!(row_versions(&pool).await, before, "the catch-up wrote and locked no row");
}

/// Where each order's row version is and which transaction last wrote or locked it.
async fn row_versions(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT order_id::text, ctid::text, xmax::text FROM order_view_v1 ORDER BY order_id")
        .fetch_all(pool)
        .await
        .expect("rows")
}
