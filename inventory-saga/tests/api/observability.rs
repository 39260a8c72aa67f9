//! What operators use: metrics, readiness, and the settings behind them.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Body, spawn_app};

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
    let app = spawn_app().await;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
        .execute(&app.pool)
        .await
        .expect("forgetting the latest migration");
    let ready = app.send(Method::GET, "/health/ready", &[], Body::None).await;
    assert_eq!(
        ready.error(StatusCode::SERVICE_UNAVAILABLE, "migration missing"),
        "not ready: database and broker are down (pipeline is up)"
    );
}

#[test]
fn help_documents_every_setting_with_its_variable_and_hides_secrets() {
    use clap::CommandFactory;
    let mut command = inventory_saga::Cli::command();
    let help = command.render_long_help().to_string();
    for variable in [
        "DATABASE_URL",
        "DATABASE_MAX_CONNECTIONS",
        "INVENTORY_HOST",
        "INVENTORY_PORT",
        "INVENTORY_DATABASE_SCHEMA",
        "INVENTORY_CONSUMER_GROUP",
        "HTTP_BODY_LIMIT_BYTES",
        "HTTP_REQUEST_TIMEOUT_MS",
        "HTTP_CORS_ALLOWED_ORIGINS",
        "HTTP_RATE_LIMIT_PER_SECOND",
        "HTTP_RATE_LIMIT_BURST",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "KAFKA_BROKERS",
        "KAFKA_SASL_PASSWORD",
    ] {
        assert!(help.contains(&format!("[env: {variable}")), "--help names {variable}");
    }
    for argument in command.get_arguments() {
        let documented = argument.get_help().is_some() || argument.get_long_help().is_some();
        assert!(documented, "--{} has no help text", argument.get_id());
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_inventory"))
        .arg("--help")
        .env("DATABASE_URL", "postgres://app:hunter2@db/inventory")
        .env("KAFKA_SASL_PASSWORD", "hunter3")
        .env("KAFKA_PRODUCER_SSL_KEY_PASSWORD", "hunter4")
        .env("DATABASE_STATEMENT_TIMEOUT_MS", "12345")
        .output()
        .expect("running inventory --help");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && printed.contains("--otlp-endpoint"), "{printed}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("hunter3") && !printed.contains("hunter4"),
        "secrets set in the environment are not printed"
    );
    assert!(printed.contains("12345"), "ordinary settings show their environment value: {printed}");
    let secret_args: Vec<_> =
        command.get_arguments().filter(|a| ["url", "sasl_password"].contains(&a.get_id().as_str())).collect();
    assert_eq!(secret_args.len(), 2);
    for argument in secret_args {
        assert!(argument.is_hide_env_values_set(), "--{} hides its environment value", argument.get_id());
    }
}
