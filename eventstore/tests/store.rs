//! The event store against a real PostgreSQL: batches commit atomically with their
//! projection, concurrent writers never lose or double a command, refused commands
//! leave the rest of a batch alone, and what we write is what postgres-es reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use cqrs_es::persist::PersistedEventRepository;
use domain::inventory::{
    AddProduct, AdjustmentReason, Product, ProductCommand, ProductError, ProductEvent, ProductName, UnitChange,
};
use domain::{OrderId, Quantity};
use eventstore::{AggregateStore, Change, Command, EventMetadata, Events, ExecuteError, Projection, ProjectionFailure};
use sqlx::{PgConnection, PgPool};

async fn pool() -> PgPool {
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, "inventory", 8, &migrations::INVENTORY).await.expect("migrated")
}

fn metadata() -> EventMetadata {
    EventMetadata::new("corr", "cause", "test")
}

fn add(stock: u32) -> ProductCommand {
    ProductCommand::AddProduct(AddProduct {
        name: ProductName::parse("Mug").expect("name"),
        initial_stock: stock,
        low_stock_threshold: 0,
    })
}

fn units(n: u32) -> Quantity {
    Quantity::new(n.into()).expect("quantity")
}

fn restock(n: u32) -> ProductCommand {
    ProductCommand::Restock { quantity: units(n) }
}

fn command(product: &str, command: ProductCommand) -> Command<Product> {
    Command { aggregate_id: product.to_owned(), command, metadata: metadata() }
}

async fn stored(pool: &PgPool, product: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT sequence, event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(product)
        .fetch_all(pool)
        .await
        .expect("events")
}

/// A projection that counts the events it was shown, in a table of its own, and can
/// be told to fail.
struct Counting {
    fail: Arc<AtomicBool>,
}

#[async_trait]
impl Projection<Product> for Counting {
    async fn apply(
        &self,
        connection: &mut PgConnection,
        _: &Events<Product>,
        changes: &[Change<Product>],
    ) -> Result<(), ProjectionFailure> {
        if self.fail.load(Ordering::SeqCst) {
            return Err("the projection is told to fail".into());
        }
        let events: i64 = changes.iter().map(|c| c.events.len() as i64).sum();
        sqlx::query("UPDATE projected SET events = events + $1").bind(events).execute(&mut *connection).await?;
        Ok(())
    }
}

async fn counting_store(pool: &PgPool) -> (AggregateStore<Product>, Arc<AtomicBool>) {
    sqlx::query("CREATE TABLE projected (events bigint NOT NULL)").execute(pool).await.expect("table");
    sqlx::query("INSERT INTO projected VALUES (0)").execute(pool).await.expect("row");
    let fail = Arc::new(AtomicBool::new(false));
    (AggregateStore::new(pool.clone()).with_projection(Counting { fail: fail.clone() }), fail)
}

async fn projected(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT events FROM projected").fetch_one(pool).await.expect("count")
}

#[tokio::test]
async fn a_batch_commits_every_aggregate_it_touches_together_with_its_projection() {
    let pool = pool().await;
    let (store, _) = counting_store(&pool).await;
    let results = store
        .execute_all(&[command("a", add(1)), command("b", add(2)), command("a", restock(5)), command("b", restock(1))])
        .await
        .expect("committed");
    let versions: Vec<u64> = results.into_iter().map(|r| r.expect("accepted").version).collect();
    assert_eq!(versions, [1, 1, 2, 2], "each command sees what its predecessors on the same product decided");
    assert_eq!(stored(&pool, "a").await, [(1, "ProductAdded".to_owned()), (2, "StockRestocked".to_owned())]);
    assert_eq!(stored(&pool, "b").await.len(), 2);
    assert_eq!(projected(&pool).await, 4, "the projection saw every event, in the same transaction");
}

#[tokio::test]
async fn when_the_projection_fails_nothing_of_the_batch_is_stored() {
    let pool = pool().await;
    let (store, fail) = counting_store(&pool).await;
    fail.store(true, Ordering::SeqCst);
    let error =
        store.execute_all(&[command("a", add(1)), command("b", add(1))]).await.expect_err("the projection failed");
    assert!(matches!(error, ExecuteError::Store(_)), "{error:?}");
    assert!(stored(&pool, "a").await.is_empty() && stored(&pool, "b").await.is_empty(), "no event without its view");

    fail.store(false, Ordering::SeqCst);
    store.execute_all(&[command("a", add(1))]).await.expect("committed");
    let (product, version) = store.load("a").await.expect("loaded");
    assert_eq!((version, product.available()), (1, 1), "the failed batch left no trace in the cache either");
}

#[tokio::test]
async fn a_refused_command_gets_its_error_and_the_rest_of_the_batch_commits() {
    let pool = pool().await;
    let store = AggregateStore::<Product>::new(pool.clone());
    let results = store
        .execute_all(&[
            command("a", add(3)),
            command("a", add(9)),
            command("a", restock(2)),
            command("ghost", restock(1)),
        ])
        .await
        .expect("committed");
    let outcomes: Vec<Result<u64, ProductError>> = results.into_iter().map(|r| r.map(|c| c.version)).collect();
    assert_eq!(outcomes, [Ok(1), Err(ProductError::AlreadyExists), Ok(2), Err(ProductError::NotFound)]);
    let (product, version) = store.load("a").await.expect("loaded");
    assert_eq!((version, product.received()), (2, 5), "the refused add changed nothing");
    assert!(stored(&pool, "ghost").await.is_empty());
}

#[tokio::test]
async fn a_command_on_a_cached_state_another_instance_moved_on_since_is_decided_on_the_latest_one() {
    let pool = pool().await;
    // Two instances of a service: each caches what it committed, and decides on its
    // cache without reading; the other moves the product on behind its back.
    let (here, there) = (AggregateStore::<Product>::new(pool.clone()), AggregateStore::<Product>::new(pool.clone()));
    let order = OrderId::generate();
    here.execute("p", add(1), &metadata()).await.expect("added");
    there.execute("p", restock(5), &metadata()).await.expect("restocked there");

    // Decided on the cache (1 available), its append finds sequence 2 taken.
    let restocked = here.execute("p", restock(1), &metadata()).await.expect("restocked here");
    assert_eq!(restocked.version, 3, "appended after the other instance's event");
    assert_eq!(here.load("p").await.expect("loaded").0.available(), 7, "1 + 5 + 1");

    // Refused on the cache (7 available), no append to catch it: decided again.
    there.execute("p", restock(5), &metadata()).await.expect("restocked there");
    let removal = ProductCommand::AdjustStock {
        quantity: UnitChange::new(-10).expect("units"),
        reason: AdjustmentReason::Damaged,
    };
    let removed = here.execute("p", removal, &metadata()).await.expect("12 available: not refused");
    assert_eq!(removed.version, 5);

    // Nothing to do on the cache (nothing held for the order), no append to catch it:
    // decided again, and the units held there leave.
    there
        .execute("p", ProductCommand::ReserveStock { order_id: order, quantity: units(1), revision: 1 }, &metadata())
        .await
        .expect("reserved there");
    let shipped = here
        .execute("p", ProductCommand::ShipStock { order_id: order, revision: 2 }, &metadata())
        .await
        .expect("shipped");
    assert_eq!(shipped.events.len(), 1, "the shipment is not lost: {:?}", shipped.events);
    let kinds: Vec<String> = stored(&pool, "p").await.into_iter().map(|(_, kind)| kind).collect();
    assert_eq!(
        kinds,
        [
            "ProductAdded",
            "StockRestocked",
            "StockRestocked",
            "StockRestocked",
            "StockAdjusted",
            "StockReserved",
            "StockShipped"
        ]
    );
}

#[tokio::test]
async fn concurrent_writers_on_one_aggregate_lose_and_double_nothing() {
    let pool = pool().await;
    AggregateStore::<Product>::new(pool.clone()).execute("hot", add(1), &metadata()).await.expect("added");
    // Four stores, as four service instances would have, each with its own cache.
    let stores: Vec<Arc<AggregateStore<Product>>> =
        (0..4).map(|_| Arc::new(AggregateStore::new(pool.clone()))).collect();
    let mut writers = tokio::task::JoinSet::new();
    for (i, store) in stores.iter().enumerate() {
        let store = store.clone();
        writers.spawn(async move {
            for _ in 0..10 {
                let batch: Vec<Command<Product>> = (0..3).map(|_| command("hot", restock(1))).collect();
                // Conflicts beyond the retry budget are the caller's to retry, as the
                // saga does: retry until committed.
                loop {
                    match store.execute_all(&batch).await {
                        Ok(results) => {
                            assert!(results.iter().all(Result::is_ok), "writer {i}: {results:?}");
                            break;
                        }
                        Err(ExecuteError::Conflict) => continue,
                        Err(other) => panic!("writer {i}: {other}"),
                    }
                }
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    let (product, version) = stores[0].load("hot").await.expect("loaded");
    assert_eq!((product.received(), version), (121, 121), "1 + 4 writers x 10 batches x 3 restocks, each exactly once");
    let sequences: Vec<i64> = stored(&pool, "hot").await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(sequences, (1..=121).collect::<Vec<i64>>(), "no gap, no duplicate");
}

#[tokio::test]
async fn what_we_append_postgres_es_reads_back_unchanged() {
    let pool = pool().await;
    let store = AggregateStore::<Product>::new(pool.clone());
    let order_id = OrderId::generate();
    let reserve = ProductCommand::ReserveStock { order_id, quantity: Quantity::new(2).expect("quantity"), revision: 1 };
    store.execute_all(&[command("p", add(5)), command("p", reserve)]).await.expect("committed");

    let repository = postgres_es::PostgresEventRepository::new(pool.clone());
    let read = repository.get_events::<Product>("p").await.expect("postgres-es reads our rows");
    let ours = store.load_events("p").await.expect("we read our rows");
    assert_eq!(read.len(), 2);
    for (theirs, ours) in read.into_iter().zip(ours) {
        let theirs: eventstore::EventEnvelope<Product> = theirs.try_into().expect("decodes");
        assert_eq!(
            (theirs.sequence, &theirs.payload, &theirs.metadata),
            (ours.sequence, &ours.payload, &ours.metadata)
        );
    }
    let (product, _) = store.load("p").await.expect("loaded");
    assert_eq!((product.available(), product.reservation(&order_id).quantity), (3, 2));
    assert!(matches!(
        store.load_events("p").await.expect("events")[1].payload,
        ProductEvent::StockReserved { quantity: 2, .. }
    ));
}

#[tokio::test]
async fn an_aggregate_whose_history_spans_several_pages_loads_whole() {
    let pool = pool().await;
    let store = AggregateStore::<Product>::new(pool.clone());
    store.execute("long", add(1), &metadata()).await.expect("added");
    let restocks: Vec<Command<Product>> = (0..25_000).map(|_| command("long", restock(1))).collect();
    store.execute_all(&restocks).await.expect("restocked");
    // A store just started reads the 25,001 events a page at a time.
    let (product, version) = AggregateStore::<Product>::new(pool.clone()).load("long").await.expect("loaded");
    assert_eq!((version, product.received()), (25_001, 25_001));
}
