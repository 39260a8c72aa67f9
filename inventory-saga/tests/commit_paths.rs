//! Which commits of products take one statement and which a transaction, as operators
//! count them (`event_store_commits_total{path}`), and that the per-order rows and the
//! view are what the events fold to on either path. A test binary of its own: the
//! counter belongs to the process, and no other test may commit beside it.

use domain::inventory::{AddProduct, ProductCommand, ProductName};
use domain::{OrderId, ProductId, Quantity};
use eventstore::{Command, EventMetadata};
use inventory_saga::products::{Products, SNAPSHOT_EVERY};
use inventory_saga::reservations;
use projections::ProductViews;

/// The counts of commits of products, in one statement and in a transaction.
fn commits() -> (u64, u64) {
    telemetry::commits_by_path("Product")
}

fn command(command: ProductCommand) -> Command<domain::inventory::Product> {
    Command {
        aggregate_id: "mug".to_owned(),
        command,
        metadata: EventMetadata::new("commit-paths-test", "commit-paths-test", "test"),
    }
}

fn order(n: u64) -> OrderId {
    OrderId::from(uuid::Uuid::from_u128(0xc0de_0000 + u128::from(n)))
}

fn reserve(n: u64, units: i64) -> Command<domain::inventory::Product> {
    let quantity = Quantity::new(units).expect("a quantity");
    command(ProductCommand::ReserveStock { order_id: order(n), quantity, revision: 1 })
}

#[tokio::test]
async fn reservations_of_a_remembered_product_commit_in_one_statement_with_their_rows_snapshots_in_a_transaction() {
    telemetry::prometheus();
    let url = migrations::testing::create_database().await.expect("a test database");
    let pool = migrations::connect_and_migrate(&url, "inventory", 4, &migrations::INVENTORY).await.expect("migrated");
    let (here, there) = (Products::store(pool.clone()), Products::store(pool.clone()));
    let added = AddProduct {
        name: ProductName::parse("Mug").expect("a name"),
        initial_stock: 1_000_000,
        low_stock_threshold: 5,
    };
    here.execute_all(&[command(ProductCommand::AddProduct(added))]).await.expect("added");
    assert_eq!(commits(), (1, 0), "a new product in one statement");

    // One event per reservation: a snapshot is due at every multiple of SNAPSHOT_EVERY.
    let (mut statements, mut transactions) = (1, 0);
    let orders = SNAPSHOT_EVERY + 20;
    for n in 0..orders {
        let results = here.execute_all(&[reserve(n, 2)]).await.expect("committed");
        let committed = results[0].as_ref().expect("reserved");
        assert_eq!(committed.events.len(), 1, "{committed:?}");
        if committed.version.is_multiple_of(SNAPSHOT_EVERY) {
            transactions += 1;
        } else {
            statements += 1;
        }
        assert_eq!(commits(), (statements, transactions), "reservation {n}, version {}", committed.version);
    }
    assert_eq!(transactions, 1, "one snapshot was due");

    // Another instance remembers neither the product nor its row: a transaction, after
    // which it remembers both.
    there.execute_all(&[reserve(orders, 3)]).await.expect("committed").remove(0).expect("reserved");
    assert_eq!(commits(), (statements, transactions + 1), "a product the other instance does not remember");
    there.execute_all(&[reserve(orders + 1, 3)]).await.expect("committed").remove(0).expect("reserved");
    assert_eq!(commits(), (statements + 1, transactions + 1), "which it remembers once it has changed it");
    // This instance's row is behind now: read again in a transaction. A release sets the
    // order's row to nothing held.
    let release = command(ProductCommand::ReleaseStock { order_id: order(0), revision: 2 });
    here.execute_all(&[release]).await.expect("committed").remove(0).expect("released");
    assert_eq!(commits(), (statements + 1, transactions + 2), "a product the other instance moved on since");

    let differences = reservations::differences(&pool).await.expect("compared");
    assert!(
        differences.is_empty(),
        "{} rows are not the fold of the events, first {:?}",
        differences.len(),
        differences[0]
    );
    let held: i64 =
        sqlx::query_scalar("SELECT sum(quantity)::bigint FROM product_reservations WHERE product_id = 'mug'")
            .fetch_one(&pool)
            .await
            .expect("held");
    let reserved = 2 * (orders as i64 - 1) + 2 * 3;
    assert_eq!(held, reserved, "every reservation's row, the released one at 0");
    let view = ProductViews::new(pool.clone()).get(&ProductId::parse("mug").expect("an id")).await.expect("read");
    let view = view.expect("the product's row");
    assert_eq!((view.available, view.reserved), (1_000_000 - reserved as u64, reserved as u64), "{view:?}");
    assert_eq!(view.version, orders + 4, "the row of the last event");
}
