//! What operators use: metrics, readiness, and the settings behind them.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn requests_commands_and_the_database_pool_are_reported_in_prometheus_text() {
    let app = spawn_app().await;
    let product_id = format!("metrics-{}", uuid::Uuid::new_v4().simple());
    app.given_product(&product_id, 10, 2).await;
    app.get_product(&product_id).await.data(StatusCode::OK);
    app.add_product(&json!({"productId": product_id, "name": "Again", "quantity": 1}))
        .await
        .error(StatusCode::CONFLICT, "taken");

    // The taken id is a refused command.
    app.assert_commands_and_requests_counted(("Product", "AddProduct"), "/inventory/products/{productId}", &product_id)
        .await;
    app.assert_pool_reported("inventory").await;
}

#[tokio::test]
async fn readiness_reports_the_database_down_when_a_migration_is_missing() {
    spawn_app().await.assert_readiness_names_a_missing_migration().await;
}

#[test]
fn help_documents_every_setting_with_its_variable_and_hides_secrets() {
    service_kit::testing::assert_help_documents_settings::<inventory_saga::Settings, inventory_saga::Inventory>(
        env!("CARGO_BIN_EXE_inventory"),
        &[],
    );
}
