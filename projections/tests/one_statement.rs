//! The rows of new aggregates, written in the statement that appends their events
//! (`Projection::rows_of_new`, one round trip per placed order): the same rows as the
//! transactional path writes, into every live table of the model.

use domain::inventory::{AddProduct, ProductCommand, ProductName};
use domain::order::{Order, OrderCommand, OrderLine, PlaceOrder};
use domain::{OrderId, ProductId, Quantity, UserId};
use eventstore::{AggregateStore, Command, Committed, EventMetadata};
use projections::{OrderViews, ProductViews, Projector, View, ViewTable};
use serde_json::Value;
use sqlx::PgPool;

async fn pool(schema: &str, migrator: &sqlx::migrate::Migrator) -> PgPool {
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, schema, 4, migrator).await.expect("migrated")
}

fn metadata() -> EventMetadata {
    EventMetadata::new("new-rows-test", "new-rows-test", "test")
}

fn placements(count: usize) -> Vec<Command<Order>> {
    (0..count)
        .map(|i| Command {
            aggregate_id: OrderId::generate().to_string(),
            command: OrderCommand::PlaceOrder(PlaceOrder {
                user_id: UserId::parse(format!("u-{i}")).expect("user id"),
                items: vec![
                    OrderLine {
                        product_id: ProductId::parse("mug").expect("id"),
                        quantity: Quantity::new(1 + i as i64).expect("quantity"),
                    },
                    OrderLine {
                        product_id: ProductId::parse("tea").expect("id"),
                        quantity: Quantity::new(2).expect("quantity"),
                    },
                ],
                idempotency_key: None,
            }),
            metadata: metadata(),
        })
        .collect()
}

/// Every row of `table`, as PostgreSQL renders it, by key.
async fn rows(pool: &PgPool, table: &str, key: &str) -> Vec<Value> {
    sqlx::query_scalar(&format!("SELECT to_jsonb(t) FROM {table} t ORDER BY {key}"))
        .fetch_all(pool)
        .await
        .expect("rows")
}

/// Writes the views `committed` fold to through the transactional path (`save_all`)
/// into a fresh copy of `live`, and returns the copy's rows.
async fn rows_written_by_save_all<T: ViewTable>(
    pool: &PgPool,
    live: &str,
    committed: &[Committed<<T::View as View>::Aggregate>],
) -> Vec<Value> {
    sqlx::query(&format!("CREATE TABLE save_all_copy (LIKE {live} INCLUDING ALL)")).execute(pool).await.expect("copy");
    let views: Vec<T::View> = committed.iter().filter_map(|c| T::View::fold(&c.events).expect("folds")).collect();
    let mut connection = pool.acquire().await.expect("connection");
    T::save_all(&mut connection, "save_all_copy", &views).await.expect("saved");
    rows(pool, "save_all_copy", T::KEY).await
}

#[tokio::test]
async fn new_orders_get_the_rows_the_transactional_path_writes() {
    let pool = pool("oms", &migrations::OMS).await;
    let store = AggregateStore::new(pool.clone()).with_projection(Projector::<OrderViews>::live());
    let committed: Vec<Committed<Order>> =
        store.execute_all(&placements(3)).await.expect("placed").into_iter().map(|r| r.expect("accepted")).collect();

    let live = rows(&pool, "order_view_v1", "order_id").await;
    assert_eq!(live.len(), 3, "a row per order: {live:?}");
    assert_eq!(
        live,
        rows_written_by_save_all::<OrderViews>(&pool, "order_view_v1", &committed).await,
        "the same rows, column for column"
    );
}

#[tokio::test]
async fn a_new_product_gets_the_row_the_transactional_path_writes() {
    let pool = pool("inventory", &migrations::INVENTORY).await;
    let store = AggregateStore::new(pool.clone()).with_projection(Projector::<ProductViews>::live());
    let add = ProductCommand::AddProduct(AddProduct {
        name: ProductName::parse("Mug").expect("name"),
        initial_stock: 5,
        low_stock_threshold: 10,
    });
    let committed = store.execute("mug", add, &metadata()).await.expect("added");

    let live = rows(&pool, "product_view_v1", "product_id").await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["stock_status"], "LOW_STOCK", "the row folds every event of the command: {live:?}");
    assert_eq!(live, rows_written_by_save_all::<ProductViews>(&pool, "product_view_v1", &[committed]).await);
}

#[tokio::test]
async fn orders_placed_while_a_generation_is_being_built_get_rows_in_both_tables() {
    let pool = pool("oms", &migrations::OMS).await;
    // What a rebuild's registration does (see projections::rebuild).
    sqlx::query("CREATE TABLE order_view_v2 (LIKE order_view_v1 INCLUDING ALL)").execute(&pool).await.expect("table");
    sqlx::query("UPDATE read_models SET building_generation = 2 WHERE name = 'order_view'")
        .execute(&pool)
        .await
        .expect("registered");
    let store = AggregateStore::new(pool.clone()).with_projection(Projector::<OrderViews>::live());
    store.execute_all(&placements(2)).await.expect("placed");

    let active = rows(&pool, "order_view_v1", "order_id").await;
    assert_eq!(active.len(), 2);
    assert_eq!(rows(&pool, "order_view_v2", "order_id").await, active, "the generation being built has them too");
}
