//! Rebuilding read models against a real PostgreSQL: a rebuild equals the live model,
//! an interrupted one resumes and ends equal, one that runs while orders are written
//! never shows a missing or older row, and verify finds every row that differs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::order::{
    ItemOutcome, ItemUpdate, Order, OrderCommand, OrderLine, PlaceOrder, RecordItemOutcome, TargetStatus, UpdateOrder,
};
use domain::{OrderId, ProductId, Quantity, UserId};
use eventstore::{AggregateStore, Command, EventMetadata};
use projections::model::{generations, table_name};
use projections::rebuild::{self, Progress};
use projections::{OrderViews, Projector, ViewTable};
use sqlx::PgPool;

async fn oms_pool() -> PgPool {
    oms_pool_and_url().await.0
}

async fn oms_pool_and_url() -> (PgPool, String) {
    let url = migrations::testing::create_database().await.expect("a test database");
    (connect(&url).await, url)
}

async fn connect(url: &str) -> PgPool {
    migrations::connect_and_migrate(url, "oms", 8, &migrations::OMS).await.expect("migrated")
}

/// A store as the OMS runs it, remembering fewer rows than most tests write: an order
/// written long ago is updated through a transaction, a recent one in one statement.
fn store(pool: &PgPool) -> AggregateStore<Order> {
    AggregateStore::new(pool.clone()).with_projection(Projector::<OrderViews>::live().remembering(1_000))
}

fn product(i: usize) -> ProductId {
    ProductId::parse(format!("p-{}", i % 7)).expect("product id")
}

fn units(n: u32) -> Quantity {
    Quantity::new(n.into()).expect("quantity")
}

fn place(i: usize) -> OrderCommand {
    OrderCommand::PlaceOrder(PlaceOrder {
        user_id: UserId::parse(format!("u-{}", i % 5)).expect("user id"),
        items: vec![
            OrderLine { product_id: product(i), quantity: units(1 + (i % 3) as u32) },
            OrderLine { product_id: product(i + 1), quantity: units(2) },
        ],
        idempotency_key: None,
    })
}

/// What happens to order `i` after it is placed: outcomes, then for some a resize, a
/// cancel, or payment.
fn life(i: usize) -> Vec<OrderCommand> {
    let outcome = |p: usize, revision, outcome| {
        OrderCommand::RecordItemOutcome(RecordItemOutcome { product_id: product(p), revision, outcome })
    };
    let mut commands = vec![outcome(i, 1, ItemOutcome::Executed), outcome(i + 1, 1, ItemOutcome::Executed)];
    match i % 4 {
        0 => commands
            .push(OrderCommand::UpdateOrder(UpdateOrder { items: vec![], status: Some(TargetStatus::Canceled) })),
        1 => commands.push(OrderCommand::UpdateOrder(UpdateOrder {
            items: vec![ItemUpdate::SetQuantity { product_id: product(i), quantity: units(9) }],
            status: None,
        })),
        2 => commands.push(OrderCommand::UpdateOrder(UpdateOrder { items: vec![], status: Some(TargetStatus::Paid) })),
        _ => {}
    }
    commands
}

fn metadata() -> EventMetadata {
    EventMetadata::new("rebuild-test", "rebuild-test", "test")
}

/// Places and plays out `orders` orders (ids `first..first + orders`), a batch at a time.
async fn write_orders(store: &AggregateStore<Order>, ids: &[OrderId], first: usize) {
    for (chunk, ids) in ids.chunks(100).enumerate() {
        let placed: Vec<Command<Order>> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| Command {
                aggregate_id: id.to_string(),
                command: place(first + chunk * 100 + k),
                metadata: metadata(),
            })
            .collect();
        store.execute_all(&placed).await.expect("placed");
        let lived: Vec<Command<Order>> = ids
            .iter()
            .enumerate()
            .flat_map(|(k, id)| {
                life(first + chunk * 100 + k).into_iter().map(move |command| Command {
                    aggregate_id: id.to_string(),
                    command,
                    metadata: metadata(),
                })
            })
            .collect();
        let results = store.execute_all(&lived).await.expect("committed");
        assert!(results.iter().all(Result::is_ok), "every command is accepted: {results:?}");
    }
}

async fn rows(pool: &PgPool, table: &str) -> HashMap<String, serde_json::Value> {
    let rows: Vec<(String, serde_json::Value)> =
        sqlx::query_as(&format!("SELECT order_id::text, to_jsonb(t) FROM {table} t"))
            .fetch_all(pool)
            .await
            .expect("rows");
    rows.into_iter().collect()
}

async fn active_table(pool: &PgPool) -> String {
    let mut connection = pool.acquire().await.expect("connection");
    table_name(OrderViews::MODEL, generations(&mut connection, OrderViews::MODEL).await.expect("registered").active)
}

#[tokio::test]
async fn a_rebuild_folds_the_same_rows_as_the_live_model_and_takes_over() {
    let pool = oms_pool().await;
    let store = store(&pool);
    let ids: Vec<OrderId> = (0..300).map(|_| OrderId::generate()).collect();
    write_orders(&store, &ids, 0).await;
    let live = rows(&pool, "order_view").await;
    assert_eq!(live.len(), 300);

    let mut seen = Vec::new();
    let rebuilt = rebuild::rebuild::<OrderViews>(&pool, store.events(), |p| seen.push(p)).await.expect("rebuilt");
    assert_eq!((rebuilt.generation, rebuilt.resumed), (2, false));
    assert_eq!(active_table(&pool).await, "order_view_v2");
    assert_eq!(rows(&pool, "order_view_v2").await, live, "the rebuilt table equals the live one, order for order");
    assert_eq!(rows(&pool, "order_view").await, live, "and the model now reads it");
    let last = seen.last().expect("progress was reported");
    assert_eq!((last.events, last.total), (rebuilt.events, rebuilt.events));

    // Commands keep the new generation up to date; a second rebuild drops the first table.
    write_orders(&store, &[OrderId::generate()], 300).await;
    assert_eq!(rows(&pool, "order_view").await.len(), 301);
    rebuild::rebuild::<OrderViews>(&pool, store.events(), |_| {}).await.expect("rebuilt again");
    assert_eq!(active_table(&pool).await, "order_view_v3");
    let gone: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('order_view_v1')::text").fetch_one(&pool).await.expect("query");
    assert_eq!(gone, None, "the generation before the previous one is dropped");
    assert!(rebuild::verify::<OrderViews>(&pool, store.events(), |_| {}).await.expect("verified").is_empty());
}

#[tokio::test]
async fn verify_reports_every_row_that_differs_and_touches_nothing() {
    let pool = oms_pool().await;
    let store = store(&pool);
    let ids: Vec<OrderId> = (0..20).map(|_| OrderId::generate()).collect();
    write_orders(&store, &ids, 0).await;
    assert!(
        rebuild::verify::<OrderViews>(&pool, store.events(), |_| {}).await.expect("verified").is_empty(),
        "a healthy model has no difference"
    );

    // Damage the live table: one row wrong, one missing, one that no event explains.
    sqlx::query("UPDATE order_view_v1 SET status = 'DELIVERED' WHERE order_id = $1")
        .bind(ids[0].as_uuid())
        .execute(&pool)
        .await
        .expect("update");
    sqlx::query("DELETE FROM order_view_v1 WHERE order_id = $1")
        .bind(ids[1].as_uuid())
        .execute(&pool)
        .await
        .expect("delete");
    sqlx::query("INSERT INTO order_view_v1 SELECT gen_random_uuid(), user_id, status, items, created_at, updated_at, version FROM order_view_v1 WHERE order_id = $1")
        .bind(ids[2].as_uuid())
        .execute(&pool)
        .await
        .expect("insert");
    let before = rows(&pool, "order_view").await;
    let differences = rebuild::verify::<OrderViews>(&pool, store.events(), |_| {}).await.expect("verified");
    assert_eq!(differences.len(), 3, "{differences:?}");
    let wrong = differences.iter().find(|d| d.key == ids[0].to_string()).expect("the wrong row is reported");
    assert_eq!(
        (wrong.live.as_ref().map(|r| r["status"].clone()), wrong.rebuilt.is_some()),
        (Some("DELIVERED".into()), true)
    );
    let missing = differences.iter().find(|d| d.key == ids[1].to_string()).expect("the missing row is reported");
    assert!(missing.live.is_none() && missing.rebuilt.is_some());
    assert_eq!(differences.iter().filter(|d| d.rebuilt.is_none()).count(), 1, "the unexplained row is reported");
    assert_eq!(rows(&pool, "order_view").await, before, "verify changed nothing that serves");
    assert_eq!(active_table(&pool).await, "order_view_v1");
}

#[tokio::test]
async fn an_interrupted_rebuild_resumes_from_its_checkpoint_and_ends_equal() {
    let (pool, url) = oms_pool_and_url().await;
    let store = store(&pool);
    // More events than one rebuild batch: 1,500 orders of 3 to 4 events.
    let ids: Vec<OrderId> = (0..1_500).map(|_| OrderId::generate()).collect();
    write_orders(&store, &ids, 0).await;
    let live = rows(&pool, "order_view").await;

    let (first_batch, tx) = (Arc::new(AtomicBool::new(false)), tokio::sync::oneshot::channel::<()>());
    let (stop, stopped) = tx;
    // The interrupted rebuild is an operator's process that dies: its connections go
    // with it (aborted on a shared pool, one could come back inside a transaction).
    let dying_process = connect(&url).await;
    let its_events = self::store(&dying_process).events().clone();
    let interrupted = {
        let (pool, events, first_batch) = (dying_process.clone(), its_events, first_batch.clone());
        let mut stop = Some(stop);
        tokio::spawn(async move {
            rebuild::rebuild::<OrderViews>(&pool, &events, move |_: Progress| {
                first_batch.store(true, Ordering::SeqCst);
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            })
            .await
        })
    };
    stopped.await.expect("the first batch was folded");
    interrupted.abort();
    let _ = interrupted.await;
    dying_process.close().await;
    assert!(first_batch.load(Ordering::SeqCst));
    assert_eq!(active_table(&pool).await, "order_view_v1", "the interrupted rebuild did not take over");

    let resumed = rebuild::rebuild::<OrderViews>(&pool, store.events(), |_| {}).await.expect("resumed");
    assert!(resumed.resumed, "it continued the unfinished generation");
    assert_eq!(resumed.generation, 2);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.expect("count");
    assert!(resumed.events < total as u64, "it folded only what was left ({} of {total})", resumed.events);
    assert_eq!(rows(&pool, "order_view").await, live, "and ends equal to the live model");
}

#[tokio::test]
async fn a_rebuild_while_orders_are_written_never_shows_a_missing_or_older_row() {
    let pool = oms_pool().await;
    let store = Arc::new(store(&pool));
    let ids: Vec<OrderId> = (0..1_500).map(|_| OrderId::generate()).collect();
    write_orders(&store, &ids, 0).await;

    let done = Arc::new(AtomicBool::new(false));
    // Writers: new orders, and changes to old ones, all through the live projection.
    let writer = {
        let (store, done, ids) = (store.clone(), done.clone(), ids.clone());
        tokio::spawn(async move {
            let mut written = Vec::new();
            let mut n = 0usize;
            while !done.load(Ordering::SeqCst) {
                let id = OrderId::generate();
                write_orders(&store, &[id], 10_000 + n).await;
                let resize = UpdateOrder {
                    items: vec![ItemUpdate::SetQuantity { product_id: product(n * 3 + 1), quantity: units(5) }],
                    status: None,
                };
                let old = ids[(n * 37) % ids.len()];
                let _ = store.execute(&old.to_string(), OrderCommand::UpdateOrder(resize), &metadata()).await;
                written.push(id);
                n += 1;
            }
            written
        })
    };
    // Readers: every order, through the model's view, again and again; a version must
    // never go back and a row seen once must never vanish.
    let reader = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen: HashMap<String, i64> = HashMap::new();
            let mut passes = 0;
            while !done.load(Ordering::SeqCst) {
                let now: Vec<(String, i64)> = sqlx::query_as("SELECT order_id::text, version FROM order_view")
                    .fetch_all(&pool)
                    .await
                    .expect("a read never fails");
                let now: HashMap<String, i64> = now.into_iter().collect();
                for (id, version) in &seen {
                    let current = now.get(id).copied();
                    assert!(
                        current.is_some_and(|c| c >= *version),
                        "order {id} was at version {version}, then {current:?}"
                    );
                }
                seen = now;
                passes += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            passes
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rebuilt = rebuild::rebuild::<OrderViews>(&pool, store.events(), |_| {}).await.expect("rebuilt");
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, Ordering::SeqCst);
    let written = writer.await.expect("writer");
    let passes = reader.await.expect("reader: no missing or older row");
    assert_eq!(rebuilt.generation, 2);
    assert!(
        passes > 10 && !written.is_empty(),
        "reads ({passes}) and writes ({}) ran across the switch",
        written.len()
    );
    assert!(
        rebuild::verify::<OrderViews>(&pool, store.events(), |_| {}).await.expect("verified").is_empty(),
        "nothing was missed"
    );
}

#[tokio::test]
async fn verify_folds_what_committed_before_it_even_behind_an_older_open_transaction() {
    let pool = oms_pool().await;
    let store = store(&pool);
    // An older transaction that is still open holds the feed back (any database's
    // would: transaction ids are the cluster's), so the orders below are committed but
    // not yet in the feed when verify starts.
    let mut connection = migrations::Pooled::acquire(&pool).await.expect("a connection");
    let (began, has_begun) = tokio::sync::oneshot::channel();
    let (written, are_written) = tokio::sync::oneshot::channel::<()>();
    let ending = tokio::spawn(async move {
        let mut older = connection.begin().await.expect("begin");
        let _: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
            .fetch_one(&mut *older)
            .await
            .expect("an id for the older transaction");
        began.send(()).expect("the test waits");
        are_written.await.expect("the orders written");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        older.commit().await.expect("commit");
    });
    has_begun.await.expect("the older transaction began");
    let ids: Vec<OrderId> = (0..10).map(|_| OrderId::generate()).collect();
    write_orders(&store, &ids, 0).await;
    written.send(()).expect("the older transaction waits");
    let differences = rebuild::verify::<OrderViews>(&pool, store.events(), |_| {}).await.expect("verified");
    ending.await.expect("the older transaction ended");
    assert!(differences.is_empty(), "every committed order was folded: {differences:?}");
}
