//! The operator commands of the `inventory` binary, run as a real process against the
//! database of a running inventory service.

use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Runs the `inventory` binary with `args` against `app`'s database. On a blocking
/// thread: the service under test runs on this test's runtime and must go on
/// serving (and committing) while the command runs, or a rebuild would wait forever
/// for the transaction it left open.
pub(crate) async fn inventory(app: &TestApp, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_inventory"));
    command
        .args(args)
        .args(["--database-url", &app.database_url, "--database-schema", "inventory"])
        .env_remove("DATABASE_URL");
    tokio::task::spawn_blocking(move || command.output())
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
