//! The operator commands of the `inventory` binary, run as a real process against the
//! database of a running inventory service.

use std::io::Write;
use std::process::{Output, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Runs the `inventory` binary with `args` against `app`'s database. On a blocking
/// thread: the service under test runs on this test's runtime and must go on
/// serving (and committing) while the command runs, or a rebuild would wait forever
/// for the transaction it left open.
pub(crate) async fn inventory(app: &TestApp, args: &[&str]) -> Output {
    inventory_reading(app, args, "").await
}

/// [`inventory`] with `input` on its standard input.
async fn inventory_reading(app: &TestApp, args: &[&str], input: &str) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_inventory"));
    command
        .args(args)
        .args(["--database-url", &app.database_url, "--database-schema", "inventory"])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = input.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn()?;
        child.stdin.take().expect("a piped standard input").write_all(input.as_bytes())?;
        child.wait_with_output()
    })
    .await
    .expect("the command's thread")
    .expect("running inventory")
}

#[tokio::test]
async fn history_export_rebuild_and_verify_work_on_the_products_of_a_running_service() {
    let app = spawn_app().await;
    app.add_product(&json!({"productId": "mug", "name": "Mug", "quantity": 3, "lowStockThreshold": 5}))
        .await
        .data(StatusCode::CREATED);
    app.restock("mug", 10).await.data(StatusCode::OK);
    app.add_product(&json!({"productId": "cup", "name": "Cup", "quantity": 0})).await.data(StatusCode::CREATED);

    let history = inventory(&app, &["history", "mug", "--json"]).await;
    assert!(history.status.success(), "{history:?}");
    let printed: Vec<Value> =
        String::from_utf8_lossy(&history.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(
        Value::Array(printed),
        Value::Array(app.history("mug").await),
        "the CLI prints the audit history of the API"
    );

    // The export stops where the feed does: behind any older transaction still open
    // anywhere on the server, as another test's may be; it is asked again meanwhile.
    let events = app.count_events().await;
    let exported = async || String::from_utf8_lossy(&inventory(&app, &["export"]).await.stdout).lines().count() as i64;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut lines = exported().await;
    while lines < events && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        lines = exported().await;
    }
    assert_eq!(lines, events, "every event, once");

    assert!(inventory(&app, &["rebuild", "--verify"]).await.status.success());
    let before = app.get_product("mug").await.data(StatusCode::OK).clone();
    let rebuilt = inventory(&app, &["rebuild"]).await;
    assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("product_view: generation 2 is active"), "{rebuilt:?}");
    assert_eq!(app.get_product("mug").await.data(StatusCode::OK), &before);
    app.restock("cup", 2).await.data(StatusCode::OK);
    assert_eq!(app.get_product("cup").await.data(StatusCode::OK)["available"], 2, "writes reach the new generation");
    assert!(inventory(&app, &["rebuild", "--verify"]).await.status.success());
}

#[tokio::test]
async fn rebuild_and_verify_of_product_reservations_find_and_repair_a_spoiled_row() {
    use domain::inventory::ProductCommand;
    use eventstore::{Command, EventMetadata};

    let app = spawn_app().await;
    app.add_product(&json!({"productId": "mug", "name": "Mug", "quantity": 10})).await.data(StatusCode::CREATED);
    let store = inventory_saga::products::Products::store(app.pool.clone());
    let orders: Vec<domain::OrderId> = (0..3).map(|_| domain::OrderId::generate()).collect();
    let commands: Vec<Command<domain::inventory::Product>> = orders
        .iter()
        .map(|order_id| Command {
            aggregate_id: "mug".to_owned(),
            command: ProductCommand::ReserveStock {
                order_id: *order_id,
                quantity: domain::Quantity::new(2).expect("units"),
                revision: 1,
            },
            metadata: EventMetadata::new("ops-test", "ops-test", "test"),
        })
        .collect();
    store.execute_all(&commands).await.expect("reserved");

    let verify = ["rebuild", "--projection", "product_reservations", "--verify"];
    let clean = inventory(&app, &verify).await;
    assert!(clean.status.success() && String::from_utf8_lossy(&clean.stdout).contains("equals the fold"), "{clean:?}");
    sqlx::query("UPDATE product_reservations SET quantity = 7 WHERE order_id = $1")
        .bind(orders[1].as_uuid())
        .execute(&app.pool)
        .await
        .expect("spoiled");
    let spoiled = inventory(&app, &verify).await;
    assert!(
        !spoiled.status.success() && String::from_utf8_lossy(&spoiled.stdout).contains("1 rows differ"),
        "{spoiled:?}"
    );

    let rebuilt = inventory(&app, &["rebuild", "--projection", "product_reservations"]).await;
    assert!(
        rebuilt.status.success() && String::from_utf8_lossy(&rebuilt.stdout).contains("3 rows folded"),
        "{rebuilt:?}"
    );
    assert!(inventory(&app, &verify).await.status.success(), "clean again");
}

#[tokio::test]
async fn ship_held_ships_what_orders_hold_once_and_a_second_run_changes_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 1).await;
    app.given_product("tea", 5, 1).await;
    // Shipped before the upgrade: still holding. Another order, not shipped, holds
    // units it keeps; one order holds nothing (its item was rejected).
    let (shipped, open, rejected) =
        (domain::OrderId::generate(), domain::OrderId::generate(), domain::OrderId::generate());
    app.reserve("mug", shipped, 2, 1).await;
    app.reserve("tea", shipped, 1, 1).await;
    app.reserve("mug", open, 3, 1).await;
    app.reserve("tea", rejected, 9, 1).await;
    let (shipped_id, rejected_id) = (shipped.to_string(), rejected.to_string());
    let events = app.count_events().await;

    let dry_run = inventory(&app, &["ship-held", "--dry-run", &shipped_id, &rejected_id]).await;
    let printed = String::from_utf8_lossy(&dry_run.stdout);
    assert!(dry_run.status.success(), "{dry_run:?}");
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            format!("{shipped_id}  mug  holds 2"),
            format!("{shipped_id}  tea  holds 1"),
            format!("{rejected_id}  holds nothing"),
            "would ship 3 units for 1 of 2 orders; the others hold nothing".to_owned(),
        ]
    );
    assert_eq!(app.count_events().await, events, "a dry run stores nothing");

    // The ids on standard input, as a listing of the OMS's shipped orders gives them.
    let run = inventory_reading(&app, &["ship-held", "-"], &format!("{shipped_id}\n{rejected_id}\n")).await;
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            format!("{shipped_id}  mug  shipped 2"),
            format!("{shipped_id}  tea  shipped 1"),
            format!("{rejected_id}  holds nothing"),
            "shipped 3 units for 1 of 2 orders; the others hold nothing".to_owned(),
        ]
    );
    assert_eq!(app.stock("mug").await, (8, 5, 3, 2));
    assert_eq!(app.stock("tea").await, (4, 4, 0, 1));
    let mug = app.assert_history_explains_product("mug").await;
    let last = mug.last().expect("events");
    assert_eq!(last["eventType"], "StockShipped");
    assert_eq!(
        last["payload"],
        json!({"orderId": shipped_id, "quantity": 2, "revision": 2}),
        "the revision after the last decided"
    );
    app.assert_history_explains_product("tea").await;

    let events = app.count_events().await;
    let again = inventory(&app, &["ship-held", &shipped_id, &rejected_id]).await;
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).lines().last(),
        Some("shipped 0 units for 0 of 2 orders; the others hold nothing"),
        "{again:?}"
    );
    assert_eq!(app.count_events().await, events, "a second run changes nothing");
    let differences = inventory_saga::reservations::differences(&app.pool).await.expect("compared");
    assert!(differences.is_empty(), "the rows are the fold of the events: {differences:?}");
}

#[tokio::test]
async fn ship_held_refuses_an_id_that_is_not_an_order_before_shipping_anything() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 1).await;
    let order_id = domain::OrderId::generate();
    app.reserve("mug", order_id, 2, 1).await;
    let events = app.count_events().await;
    let refused = inventory(&app, &["ship-held", &order_id.to_string(), "order-7"]).await;
    assert!(!refused.status.success(), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("'order-7' is not an order id"), "{refused:?}");
    assert_eq!(app.count_events().await, events, "nothing shipped");

    let help = inventory(&app, &["--help"]).await;
    assert!(String::from_utf8_lossy(&help.stdout).contains("ship-held"), "{help:?}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_inventory")).args(["ship-held", "--help"]).output();
    let help = String::from_utf8_lossy(&help.expect("ship-held --help").stdout).into_owned();
    for documented in ["ORDER_ID", "--dry-run", "[env: INVENTORY_DATABASE_SCHEMA", "SHIPPED"] {
        assert!(help.contains(documented), "ship-held --help names {documented}: {help}");
    }
}
