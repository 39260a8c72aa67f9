//! Rows written in the statement that appends their events (`Projection::rows_of`):
//! those of new aggregates (one round trip per placed order) and those of aggregates
//! whose committed row the projection remembers (an order's outcome, its payment).
//! They are the rows the transactional path writes, in every live table of the model,
//! and a remembered row that another instance has moved on since is never written.

mod support;

use domain::inventory::{AddProduct, ProductCommand, ProductName};
use domain::order::Order;
use eventstore::{AggregateStore, Command, Committed};
use projections::{OrderViews, ProductViews, Projector, View, ViewTable};
use serde_json::Value;
use sqlx::PgPool;
use support::{metadata, place, placements, pool, remembering, resize};

/// Every row of `table`, as PostgreSQL renders it, by key.
async fn rows(pool: &PgPool, table: &str, key: &str) -> Vec<Value> {
    sqlx::query_scalar(&format!("SELECT to_jsonb(t) FROM {table} t ORDER BY {key}"))
        .fetch_all(pool)
        .await
        .expect("rows")
}

/// Writes `views` through the transactional path (`save_all`) into a fresh copy of
/// `live`, and returns the copy's rows.
async fn rows_written_by_save_all<T: ViewTable>(pool: &PgPool, live: &str, views: &[T::View]) -> Vec<Value> {
    sqlx::query("DROP TABLE IF EXISTS save_all_copy").execute(pool).await.expect("dropped");
    sqlx::query(&format!("CREATE TABLE save_all_copy (LIKE {live} INCLUDING ALL)")).execute(pool).await.expect("copy");
    let mut connection = pool.acquire().await.expect("connection");
    T::save_all(&mut connection, "save_all_copy", views).await.expect("saved");
    rows(pool, "save_all_copy", T::KEY).await
}

/// The views `committed` (new aggregates) fold to.
fn folded<A: eventstore::Aggregate, V: View<Aggregate = A>>(committed: &[Committed<A>]) -> Vec<V> {
    committed.iter().filter_map(|c| V::fold(&c.events).expect("folds")).collect()
}

/// The views of `orders` folded from every event they have.
async fn folded_histories(store: &AggregateStore<Order>, orders: &[&str]) -> Vec<<OrderViews as ViewTable>::View> {
    let mut views = Vec::new();
    for order in orders {
        let history = store.load_events(order).await.expect("events");
        views.extend(<OrderViews as ViewTable>::View::fold(&history).expect("folds"));
    }
    views
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
        rows_written_by_save_all::<OrderViews>(&pool, "order_view_v1", &folded(&committed)).await,
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
    assert_eq!(live, rows_written_by_save_all::<ProductViews>(&pool, "product_view_v1", &folded(&[committed])).await);
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

#[tokio::test]
async fn updated_orders_whose_rows_are_remembered_get_the_rows_the_transactional_path_writes() {
    let pool = pool("oms", &migrations::OMS).await;
    let store = remembering(&pool);
    let orders = place(&store, 3).await;
    for quantity in [4, 9] {
        let resizes: Vec<Command<Order>> = orders.iter().map(|order| resize(order, "mug", quantity)).collect();
        let results = store.execute_all(&resizes).await.expect("committed");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }

    let live = rows(&pool, "order_view_v1", "order_id").await;
    assert!(live.iter().all(|row| row["version"] == 3), "every order at its third event: {live:?}");
    let ids: Vec<&str> = orders.iter().map(String::as_str).collect();
    let expected = folded_histories(&store, &ids).await;
    assert_eq!(live, rows_written_by_save_all::<OrderViews>(&pool, "order_view_v1", &expected).await);
}

#[tokio::test]
async fn an_order_changed_by_two_instances_in_turn_always_has_the_row_of_its_whole_history() {
    let pool = pool("oms", &migrations::OMS).await;
    // Two instances of the service, each remembering the rows it committed.
    let (here, there) = (remembering(&pool), remembering(&pool));
    let order = place(&here, 1).await.remove(0);
    // Each remembers a row the other has moved on since, at every turn but the
    // repeated ones. Each turn adds an item: a row folded onto a stale one would
    // lack the other's.
    for (turn, instance) in [&there, &here, &here, &there, &here, &there, &there].into_iter().enumerate() {
        instance.execute_all(&[resize(&order, &format!("turn-{turn}"), 1)]).await.expect("committed")[0]
            .as_ref()
            .expect("accepted");
        let live = rows(&pool, "order_view_v1", "order_id").await;
        let expected = folded_histories(&here, &[order.as_str()]).await;
        assert_eq!(
            live,
            rows_written_by_save_all::<OrderViews>(&pool, "order_view_v1", &expected).await,
            "after turn {turn}"
        );
        assert_eq!(live[0]["version"], 2 + turn);
    }
}

#[tokio::test]
async fn orders_updated_while_a_generation_is_being_built_get_their_whole_rows_in_both_tables() {
    let pool = pool("oms", &migrations::OMS).await;
    let store = remembering(&pool);
    let orders = place(&store, 2).await;
    // A rebuild registers after the placements: its table has no row of them yet.
    sqlx::query("CREATE TABLE order_view_v2 (LIKE order_view_v1 INCLUDING ALL)").execute(&pool).await.expect("table");
    sqlx::query("UPDATE read_models SET building_generation = 2 WHERE name = 'order_view'")
        .execute(&pool)
        .await
        .expect("registered");
    let resizes: Vec<Command<Order>> = orders.iter().map(|order| resize(order, "tea", 7)).collect();
    store.execute_all(&resizes).await.expect("committed");

    let active = rows(&pool, "order_view_v1", "order_id").await;
    assert!(active.iter().all(|row| row["version"] == 2), "{active:?}");
    assert_eq!(rows(&pool, "order_view_v2", "order_id").await, active, "the generation being built has them whole");
}
