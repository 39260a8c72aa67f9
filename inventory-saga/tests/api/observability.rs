//! What operators use: metrics, readiness, and the settings behind them.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

/// The value of the first sample line of `metrics` that starts with `series`.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn requests_and_commands_are_counted_in_prometheus_text() {
    let app = spawn_app().await;
    let product_id = format!("metrics-{}", uuid::Uuid::new_v4().simple());
    app.given_product(&product_id, 10, 2).await;
    app.get_product(&product_id).await.data(StatusCode::OK);
    app.add_product(&json!({"productId": product_id, "name": "Again", "quantity": 1}))
        .await
        .error(StatusCode::CONFLICT, "taken");

    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    let commands = |result: &str| {
        sample(&metrics, &format!(r#"commands_total{{aggregate="Product",command="AddProduct",result="{result}"}}"#))
    };
    assert!(commands("accepted") >= 1.0, "{metrics}");
    assert!(commands("rejected") >= 1.0, "the taken id is a refused command: {metrics}");
    let by_route =
        sample(&metrics, r#"http_requests_total{method="GET",route="/inventory/products/{productId}",status="200"}"#);
    assert!(by_route >= 1.0, "requests are counted under the route template: {metrics}");
    assert!(!metrics.contains(&product_id), "ids never become labels");
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
