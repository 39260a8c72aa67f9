//! Products whose orders are kept apart (`product_reservations`) and which load from
//! snapshots decide exactly as the full fold of their events: warm or cold, after a
//! restart, from a snapshot, for redelivered and replayed requests, and on histories
//! written before the rows existed. The reference is always a store that folds every
//! event into the product in memory, as the service did before.

use std::collections::BTreeSet;
use std::sync::Arc;

use clap::Parser;
use domain::inventory::{AddProduct, OrderEntry, Product, ProductCommand, ProductEvent, ProductName};
use domain::{OrderId, Quantity};
use eventstore::{Aggregate, AggregateStore, Command, EventMetadata};
use inventory_saga::products::{Products, SNAPSHOT_EVERY};
use inventory_saga::reservations;
use messaging::ReplaceableProducer;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

async fn pool() -> PgPool {
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, "inventory", 8, &migrations::INVENTORY).await.expect("migrated")
}

/// A store folding every event into the product in memory: what decisions must equal.
fn full_fold(pool: &PgPool) -> AggregateStore<Product> {
    AggregateStore::new(pool.clone())
}

/// A small deterministic generator, so a failure replays.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides
    }
}

const PRODUCTS: [&str; 3] = ["mug", "tea", "ghost"];

fn order(n: u64) -> OrderId {
    OrderId::from(uuid::Uuid::from_u128(0xabc0_0000 + u128::from(n)))
}

fn units(n: u64) -> Quantity {
    Quantity::new(n.max(1) as i64).expect("a quantity")
}

fn command(product: &str, command: ProductCommand) -> Command<Product> {
    Command {
        aggregate_id: product.to_owned(),
        command,
        metadata: EventMetadata::new("reservations-test", "reservations-test", "test"),
    }
}

fn added(product: &str, stock: u32) -> Command<Product> {
    command(
        product,
        ProductCommand::AddProduct(AddProduct {
            name: ProductName::parse(product).expect("a name"),
            initial_stock: stock,
            low_stock_threshold: 5,
        }),
    )
}

/// A saga's stream of requests on the products ("ghost" is never added): reservations,
/// releases and shipments of `orders` orders, each under a revision that mostly grows and is
/// sometimes an old one again (a redelivery), a restock now and then.
fn requests(dice: &mut Dice, count: usize, orders: u64) -> Vec<Command<Product>> {
    let mut revisions = vec![0u64; orders as usize];
    let mut commands = Vec::with_capacity(count);
    for _ in 0..count {
        let product = PRODUCTS[[0, 0, 0, 1, 1, 2][dice.roll(6) as usize]];
        let n = dice.roll(orders);
        let last = &mut revisions[n as usize];
        let revision = match dice.roll(8) {
            0 => last.saturating_sub(1).max(1),
            1 => (*last).max(1),
            _ => *last + 1 + dice.roll(2),
        };
        *last = (*last).max(revision);
        let asked = match dice.roll(10) {
            0 if product != "ghost" => ProductCommand::Restock { quantity: units(1 + dice.roll(20)) },
            1 | 2 => ProductCommand::ReleaseStock { order_id: order(n), revision },
            3 => ProductCommand::ShipStock { order_id: order(n), revision },
            _ => ProductCommand::ReserveStock { order_id: order(n), quantity: units(1 + dice.roll(6)), revision },
        };
        commands.push(command(product, asked));
    }
    commands
}

/// What the full fold decides for `batch`, each command on the state its predecessors
/// left (refused commands decide nothing).
async fn expected(full: &AggregateStore<Product>, batch: &[Command<Product>]) -> Vec<Vec<ProductEvent>> {
    let mut products = std::collections::HashMap::new();
    let mut decided = Vec::new();
    for command in batch {
        if !products.contains_key(&command.aggregate_id) {
            products.insert(command.aggregate_id.clone(), full.load(&command.aggregate_id).await.expect("full fold").0);
        }
        let product: &mut Product = products.get_mut(&command.aggregate_id).expect("loaded");
        let events = product.decide(command.command.clone()).unwrap_or_default();
        for event in &events {
            product.apply(event.clone());
        }
        decided.push(events);
    }
    decided
}

/// Runs `batch` on `store` and checks it decides what the full fold decides.
async fn run_and_compare(
    full: &AggregateStore<Product>,
    store: &AggregateStore<Product>,
    batch: &[Command<Product>],
    label: &str,
) -> usize {
    let expected = expected(full, batch).await;
    let results = store.execute_all(batch).await.expect("committed");
    let decided: Vec<Vec<ProductEvent>> = results
        .into_iter()
        .map(|r| r.map(|c| c.events.into_iter().map(|e| e.payload).collect()).unwrap_or_default())
        .collect();
    assert_eq!(decided, expected, "{label}: {batch:?}");
    decided.iter().map(Vec::len).sum()
}

async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await.expect("count")
}

async fn stored_entry(pool: &PgPool, product: &str, order_id: OrderId) -> OrderEntry {
    let row: Option<(i64, i64, Option<i64>)> = sqlx::query_as("SELECT quantity, revision, announced_sequence FROM product_reservations WHERE product_id = $1 AND order_id = $2")
        .bind(product)
        .bind(order_id.as_uuid())
        .fetch_optional(pool)
        .await
        .expect("row");
    row.map_or_else(OrderEntry::default, |(quantity, revision, announced)| OrderEntry {
        reservation: domain::inventory::Reservation { quantity: quantity as u32, revision: revision as u64 },
        announcement: announced.map(|s| s as u64),
    })
}

/// Every row is what the full fold holds for its (product, order), and the SQL fold
/// of the events (rebuild, backfill) gives the same rows.
async fn assert_rows_are_the_fold(pool: &PgPool, orders: u64, label: &str) {
    assert_rows_of_are_the_fold(pool, &PRODUCTS, orders, label).await;
}

async fn assert_rows_of_are_the_fold(pool: &PgPool, products: &[&str], orders: u64, label: &str) {
    let full = full_fold(pool);
    for &product in products {
        let (folded, _) = full.load(product).await.expect("full fold");
        for n in 0..orders {
            assert_eq!(
                stored_entry(pool, product, order(n)).await,
                folded.order_entry(&order(n)),
                "{label}: {product}, order {n}"
            );
        }
    }
    let differences = reservations::differences(pool).await.expect("compared");
    assert!(differences.is_empty(), "{label}: the SQL fold differs from the rows: {differences:?}");
}

/// Plays `commands` in batches of 1 to 4 (the same product and order may come twice in
/// one), each on the warm store or on a store just started (empty cache), checking
/// every decision against the full fold. Returns the events decided.
async fn play(
    pool: &PgPool,
    warm: &AggregateStore<Product>,
    commands: &[Command<Product>],
    dice: &mut Dice,
    label: &str,
) -> usize {
    let full = full_fold(pool);
    let mut decided = 0;
    let mut rest = commands;
    while !rest.is_empty() {
        let size = (1 + dice.roll(4) as usize).min(rest.len());
        let (batch, after) = rest.split_at(size);
        decided += if dice.roll(3) == 0 {
            run_and_compare(&full, &Products::store(pool.clone()), batch, &format!("{label}, cold")).await
        } else {
            run_and_compare(&full, warm, batch, &format!("{label}, warm")).await
        };
        rest = after;
    }
    decided
}

#[tokio::test]
async fn warm_and_cold_stores_decide_like_the_full_fold_and_the_rows_are_its_entries() {
    let pool = pool().await;
    let warm = Products::store(pool.clone());
    let mut dice = Dice(7);
    warm.execute_all(&[added("mug", 60), added("tea", 10)]).await.expect("added");
    let history = requests(&mut dice, 1_400, 40);
    let decided = play(&pool, &warm, &history, &mut dice, "history").await;
    assert!(decided > 2 * SNAPSHOT_EVERY as usize, "the history crosses snapshots ({decided} events)");
    assert_rows_are_the_fold(&pool, 40, "after the history").await;

    let (cached, _) = warm.load("mug").await.expect("loaded");
    assert_eq!(cached.orders_held(), 0, "the cached product holds no order");
}

#[tokio::test]
async fn redelivered_and_replayed_requests_decide_nothing_once_the_orders_are_kept_apart() {
    let pool = pool().await;
    let warm = Products::store(pool.clone());
    let mut dice = Dice(11);
    warm.execute_all(&[added("mug", 40), added("tea", 8)]).await.expect("added");
    let history = requests(&mut dice, 700, 30);
    play(&pool, &warm, &history, &mut dice, "history").await;
    let events_before = event_count(&pool).await;
    let rows_before: Vec<(String, uuid::Uuid, i64, i64, Option<i64>)> =
        sqlx::query_as("SELECT * FROM product_reservations ORDER BY 1, 2").fetch_all(&pool).await.expect("rows");

    // Kafka redelivers reservations and releases (never restocks): in the same order
    // (a topic replayed to a new group) and in batches, to the warm store and to one
    // started after a restart.
    let redelivered: Vec<Command<Product>> =
        history.into_iter().filter(|c| !matches!(c.command, ProductCommand::Restock { .. })).collect();
    for (label, store) in [("warm", &warm), ("after a restart", &Products::store(pool.clone()))] {
        for batch in redelivered.chunks(16) {
            let results = store.execute_all(batch).await.expect("committed");
            for (result, command) in results.iter().zip(batch) {
                let events = &result.as_ref().expect("no rule refuses a reservation request").events;
                assert!(events.is_empty(), "{label}: a redelivered {command:?} decided {events:?}");
            }
        }
    }
    assert_eq!(event_count(&pool).await, events_before, "no event was added");
    let rows_after: Vec<(String, uuid::Uuid, i64, i64, Option<i64>)> =
        sqlx::query_as("SELECT * FROM product_reservations ORDER BY 1, 2").fetch_all(&pool).await.expect("rows");
    assert_eq!(rows_after, rows_before, "no row changed");
    assert_rows_are_the_fold(&pool, 30, "after the redeliveries").await;
}

#[tokio::test]
async fn a_product_loads_from_its_snapshot_and_the_events_after_it_to_the_state_of_the_full_fold() {
    let pool = pool().await;
    let warm = Products::store(pool.clone());
    let mut dice = Dice(3);
    warm.execute_all(&[added("mug", 100)]).await.expect("added");
    let history: Vec<Command<Product>> =
        requests(&mut dice, 1_600, 50).into_iter().map(|c| command("mug", c.command)).collect();
    play(&pool, &warm, &history, &mut dice, "history").await;

    let (version, without): (i64, String) = sqlx::query_as("SELECT version, without_state FROM aggregate_snapshots WHERE aggregate_type = 'Product' AND aggregate_id = 'mug'")
        .fetch_one(&pool)
        .await
        .expect("a snapshot of mug");
    let (mut folded, mut full_version) = full_fold(&pool).load("mug").await.expect("full fold");
    assert!(
        version >= SNAPSHOT_EVERY as i64
            && (version as u64) <= full_version
            && full_version - (version as u64) < 2 * SNAPSHOT_EVERY,
        "snapshot at {version} of {full_version}"
    );
    assert_eq!(without, "product_reservations");
    folded.forget_orders();
    let (cold, cold_version) = Products::store(pool.clone()).load("mug").await.expect("cold load");
    assert_eq!((cold, cold_version), (folded.clone(), full_version), "snapshot plus the events after it");

    // The snapshot is what a cold load starts from: a forged one shows.
    sqlx::query("UPDATE aggregate_snapshots SET state = jsonb_set(state, '{stock,received}', '1000000') WHERE aggregate_id = 'mug'").execute(&pool).await.expect("forged");
    let (forged, _) = Products::store(pool.clone()).load("mug").await.expect("cold load");
    assert_ne!(forged.received(), folded.received(), "the snapshot was read");

    // One that does not decode (an older or foreign shape) is ignored, never an error.
    for (label, state) in [
        ("not a product", r#"{"hello": "world"}"#),
        ("an older shape", r#"{"version": 3, "stock": 7}"#),
        ("not an object", "[]"),
    ] {
        sqlx::query("UPDATE aggregate_snapshots SET state = $1::jsonb WHERE aggregate_id = 'mug'")
            .bind(state)
            .execute(&pool)
            .await
            .expect("spoiled");
        let (loaded, loaded_version) =
            Products::store(pool.clone()).load("mug").await.unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!((loaded, loaded_version), (folded.clone(), full_version), "{label}: folded from the first event");
        let replaced: Option<i64> = sqlx::query_scalar(
            "SELECT (state ->> 'version')::bigint FROM aggregate_snapshots WHERE aggregate_id = 'mug'",
        )
        .fetch_one(&pool)
        .await
        .expect("read");
        assert_eq!(replaced, Some(full_version as i64), "{label}: the long fold replaced it");
        // And a cold store decides with it as the full fold does.
        let more: Vec<Command<Product>> =
            requests(&mut dice, 6, 50).into_iter().map(|c| command("mug", c.command)).collect();
        run_and_compare(&full_fold(&pool), &Products::store(pool.clone()), &more, label).await;
        (folded, full_version) = full_fold(&pool).load("mug").await.expect("full fold");
        folded.forget_orders();
    }
}

#[tokio::test]
async fn a_snapshot_is_written_with_its_events_and_never_over_a_newer_one() {
    let pool = pool().await;
    let warm = Products::store(pool.clone());
    warm.execute_all(&[added("mug", 10)]).await.expect("added");
    let restocks: Vec<Command<Product>> =
        (0..SNAPSHOT_EVERY + 10).map(|_| command("mug", ProductCommand::Restock { quantity: units(1) })).collect();
    for batch in restocks.chunks(7) {
        warm.execute_all(batch).await.expect("restocked");
    }
    let version: i64 = sqlx::query_scalar("SELECT version FROM aggregate_snapshots WHERE aggregate_id = 'mug'")
        .fetch_one(&pool)
        .await
        .expect("snapshot");
    assert!(
        (SNAPSHOT_EVERY as i64..SNAPSHOT_EVERY as i64 + 7).contains(&version),
        "written by the batch that crossed {SNAPSHOT_EVERY}: {version}"
    );
    // A newer snapshot stays when an older state would be written over it.
    sqlx::query("UPDATE aggregate_snapshots SET version = version + 1000 WHERE aggregate_id = 'mug'")
        .execute(&pool)
        .await
        .expect("moved");
    let more: Vec<Command<Product>> =
        (0..SNAPSHOT_EVERY).map(|_| command("mug", ProductCommand::Restock { quantity: units(1) })).collect();
    warm.execute_all(&more).await.expect("restocked");
    let kept: i64 = sqlx::query_scalar("SELECT version FROM aggregate_snapshots WHERE aggregate_id = 'mug'")
        .fetch_one(&pool)
        .await
        .expect("snapshot");
    assert_eq!(kept, version + 1000, "not replaced by an older version");
}

/// The inventory migrations (its own and those it shares with the OMS) up to and
/// including `last`, as an older release applied them.
fn migrations_up_to(last: &str) -> tempdir::Dir {
    let sources = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let dir = tempdir::Dir::new();
    for source in ["inventory", "shared"] {
        for entry in std::fs::read_dir(sources.join(source)).expect("the migrations") {
            let path = entry.expect("an entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name.as_str() <= last {
                std::fs::copy(&path, dir.path().join(&name)).expect("copied");
            }
        }
    }
    dir
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("inventory-migrations-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).expect("a temporary directory");
            Self(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
}

#[tokio::test]
async fn a_history_written_before_the_per_order_rows_existed_is_backfilled_and_decides_as_before() {
    let url = migrations::testing::create_database().await.expect("a test database");
    let older = Migrator::new(migrations_up_to("0007_dead_letters.sql").path()).await.expect("the older migrations");
    let old_pool =
        migrations::connect_and_migrate(&url, "inventory", 4, &older).await.expect("migrated as an older release");
    // The older release: every order folded into the product in memory.
    let old = full_fold(&old_pool);
    let mut dice = Dice(5);
    old.execute_all(&[added("mug", 50), added("tea", 9)]).await.expect("added");
    // That release did not ship orders (StockShipped came with migration 0010).
    let history: Vec<Command<Product>> = requests(&mut dice, 2_000, 40)
        .into_iter()
        .filter(|c| !matches!(c.command, ProductCommand::ShipStock { .. }))
        .collect();
    for batch in history.chunks(5) {
        old.execute_all(batch).await.expect("committed");
    }
    let kinds: BTreeSet<String> = sqlx::query_scalar("SELECT DISTINCT event_type FROM events")
        .fetch_all(&old_pool)
        .await
        .expect("kinds")
        .into_iter()
        .collect();
    for kind in ["StockReserved", "ReservationReduced", "ReservationRejected", "StockReleased"] {
        assert!(kinds.contains(kind), "the history has {kind}: {kinds:?}");
    }
    let announcements_kept_by_a_release: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events r JOIN events j ON j.aggregate_id = r.aggregate_id AND j.sequence = r.sequence - 1
          WHERE r.event_type = 'StockReleased' AND j.event_type = 'ReservationRejected'",
    )
    .fetch_one(&old_pool)
    .await
    .expect("count");
    assert!(announcements_kept_by_a_release > 0, "the history has rejections completed by a release");
    old_pool.close().await;

    // The new release starts: migration 0008 fills the rows from the stored events.
    let pool = migrations::connect_and_migrate(&url, "inventory", 8, &migrations::INVENTORY)
        .await
        .expect("migrated by the new release");
    assert_rows_are_the_fold(&pool, 40, "backfilled").await;

    // No snapshot yet: the first cold load folds the whole history, then leaves one.
    let snapshots = || {
        sqlx::query_scalar::<_, i64>("SELECT version FROM aggregate_snapshots WHERE aggregate_id = 'mug'")
            .fetch_optional(&pool)
    };
    assert_eq!(snapshots().await.expect("read"), None);
    let (mut folded, full_version) = full_fold(&pool).load("mug").await.expect("full fold");
    folded.forget_orders();
    let (cold, cold_version) = Products::store(pool.clone()).load("mug").await.expect("cold load");
    assert!(full_version >= SNAPSHOT_EVERY, "a history longer than the snapshot interval ({full_version} events)");
    assert_eq!((cold, cold_version), (folded, full_version));
    assert_eq!(snapshots().await.expect("read"), Some(full_version as i64), "the long fold left a snapshot");

    // And it decides as the older release would have, warm and cold, replays included.
    let warm = Products::store(pool.clone());
    let more = requests(&mut dice, 400, 40);
    play(&pool, &warm, &more, &mut dice, "after the upgrade").await;
    play(&pool, &warm, &history, &mut dice, "the old history replayed").await;
    assert_rows_are_the_fold(&pool, 40, "after the upgrade").await;
}

#[tokio::test]
async fn the_operator_rebuild_restores_the_rows_from_the_events() {
    let pool = pool().await;
    let warm = Products::store(pool.clone());
    let mut dice = Dice(13);
    warm.execute_all(&[added("mug", 30), added("tea", 5)]).await.expect("added");
    play(&pool, &warm, &requests(&mut dice, 300, 20), &mut dice, "history").await;
    sqlx::query("UPDATE product_reservations SET quantity = quantity + 1 WHERE order_id = $1")
        .bind(order(3).as_uuid())
        .execute(&pool)
        .await
        .expect("spoiled");
    sqlx::query("DELETE FROM product_reservations WHERE order_id = $1")
        .bind(order(4).as_uuid())
        .execute(&pool)
        .await
        .expect("spoiled");
    let differences = reservations::differences(&pool).await.expect("compared");
    assert!(!differences.is_empty(), "the spoiled rows are found");
    let rows = reservations::rebuild(&pool).await.expect("rebuilt");
    assert!(rows > 0);
    assert_rows_are_the_fold(&pool, 20, "rebuilt").await;
    let snapshots: i64 =
        sqlx::query_scalar("SELECT count(*) FROM aggregate_snapshots").fetch_one(&pool).await.expect("count");
    assert_eq!(snapshots, 0, "the rebuild drops the product snapshots");
}

#[tokio::test]
async fn concurrent_instances_deciding_for_the_same_orders_keep_the_rows_and_the_stock_exact() {
    let pool = pool().await;
    Products::store(pool.clone()).execute_all(&[added("mug", 200)]).await.expect("added");
    let revisions = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4u64 {
        let (pool, revisions) = (pool.clone(), revisions.clone());
        writers.spawn(async move {
            // Each instance has its own store and cache; all ask about the same orders.
            let store = Products::store(pool);
            let mut dice = Dice(100 + writer);
            for _ in 0..25 {
                let batch: Vec<Command<Product>> = (0..4)
                    .map(|_| {
                        let (n, revision) =
                            (dice.roll(12), revisions.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
                        let asked = if dice.roll(4) == 0 {
                            ProductCommand::ReleaseStock { order_id: order(n), revision }
                        } else {
                            ProductCommand::ReserveStock {
                                order_id: order(n),
                                quantity: units(1 + dice.roll(30)),
                                revision,
                            }
                        };
                        command("mug", asked)
                    })
                    .collect();
                loop {
                    match store.execute_all(&batch).await {
                        Ok(_) => break,
                        Err(eventstore::ExecuteError::Conflict) => continue,
                        Err(other) => panic!("writer {writer}: {other}"),
                    }
                }
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    assert_rows_of_are_the_fold(&pool, &["mug"], 12, "after concurrent writers").await;
    let held: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(quantity), 0)::bigint FROM product_reservations WHERE product_id = 'mug'",
    )
    .fetch_one(&pool)
    .await
    .expect("sum");
    let (product, _) = Products::store(pool.clone()).load("mug").await.expect("loaded");
    assert_eq!(product.reserved(), held as u64, "reserved is the sum of what the orders hold");
    assert!(product.reserved() <= product.received(), "no oversell");
}

#[tokio::test]
async fn a_re_request_finds_the_event_that_announced_the_decision_in_the_orders_row() {
    let pool = pool().await;
    let products = std::sync::Arc::new(Products::new(pool.clone()));
    let store = Products::store(pool.clone());
    let reserve = |n: u64, quantity: u64, revision: u64| {
        command("mug", ProductCommand::ReserveStock { order_id: order(n), quantity: units(quantity), revision })
    };
    // Sequences: 1 added, 2 reserved for order 1, 3 rejected for order 2, 4 reserved for
    // order 3, 5 low stock, 6-7 rejected and released for order 3 (a bigger request), 8
    // reserved for order 4, 9 released for order 4 (canceled).
    store
        .execute_all(&[
            added("mug", 10),
            reserve(1, 3, 1),
            reserve(2, 20, 1),
            reserve(3, 2, 1),
            reserve(3, 12, 2),
            reserve(4, 1, 1),
        ])
        .await
        .expect("committed");
    store
        .execute_all(&[command("mug", ProductCommand::ReleaseStock { order_id: order(4), revision: 2 })])
        .await
        .expect("committed");
    let mut kafka = inventory_saga::Cli::try_parse_from(["inventory"]).expect("the default settings").serve.kafka;
    kafka.brokers = "127.0.0.1:1".to_owned();
    let producer = Arc::new(ReplaceableProducer::new(kafka.producer_config(), "test").expect("a producer"));
    let reannouncer = inventory_saga::reannounce::Reannouncer::new(pool.clone(), products, producer, &kafka);
    let (executed, canceled) =
        (messaging::messages::outcomes::ITEM_EXECUTED, messaging::messages::outcomes::ITEM_CANCELED);
    let cases =
        [(1, Some((executed, 2, 1))), (2, Some((canceled, 3, 1))), (3, Some((canceled, 6, 2))), (4, None), (5, None)];
    for (n, expected) in cases {
        let outcome = reannouncer.outcome("mug", order(n)).await.expect("read");
        let found = outcome.first().map(|(message, _)| {
            (
                message.envelope.event_type.as_str(),
                message.envelope.sequence,
                message.envelope.payload["revision"].as_u64().unwrap_or_default(),
            )
        });
        assert_eq!(found, expected, "order {n}");
        assert!(outcome.len() <= 1, "order {n}: one outcome at most");
    }
}
