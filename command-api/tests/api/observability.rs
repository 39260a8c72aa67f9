//! What operators use: metrics, readiness, and the settings behind them.

use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Body, spawn_app};

#[tokio::test]
async fn requests_commands_and_the_database_pool_are_reported_in_prometheus_text() {
    let app = spawn_app().await;
    let placed = app.place_order("metrics-user", &[("mug", 1)]).await;
    let order_id = placed["orderId"].as_str().expect("orderId");
    app.send(Method::GET, &format!("/oms/orders/{order_id}"), &[], Body::None).await.data(StatusCode::OK);
    let twice = json!({"userId": "u", "orderItems": [{"productId": "mug", "quantity": 1}, {"productId": "mug", "quantity": 2}]});
    app.send(Method::POST, "/oms/orders", &[], Body::Json(twice))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "duplicate product");

    // The duplicate product is a refused command.
    app.assert_commands_and_requests_counted(("Order", "PlaceOrder"), "/oms/orders/{orderId}", order_id).await;
    app.assert_pool_reported("oms").await;
}

#[tokio::test]
async fn readiness_reports_the_database_down_when_a_migration_is_missing() {
    spawn_app().await.assert_readiness_names_a_missing_migration().await;
}

#[test]
fn help_documents_every_setting_with_its_variable_and_hides_secrets() {
    service_kit::testing::assert_help_documents_settings::<command_api::Settings, command_api::Oms>(
        env!("CARGO_BIN_EXE_oms"),
        &["ORDER_REREQUEST_AFTER_MS", "ORDER_PAYMENT_TIMEOUT_MS"],
    );
}

#[tokio::test]
async fn pooled_sessions_carry_the_configured_limits_and_a_statement_over_the_timeout_fails_as_a_transient_error() {
    let url = migrations::testing::create_database().await.expect("a test database");
    let settings = command_api::Cli::try_parse_from([
        "oms",
        "--database-statement-timeout-ms=300",
        "--database-idle-in-transaction-timeout-ms=4000",
        "--database-tcp-keepalives-idle-secs=45",
        "--database-tcp-keepalives-interval-secs=7",
        "--database-tcp-keepalives-count=4",
    ])
    .expect("the flags parse")
    .serve;
    let pool = migrations::connect_and_migrate_with(
        &url,
        "oms",
        3,
        &settings.service.database_sessions.sessions(),
        &migrations::OMS,
    )
    .await
    .expect("connecting");
    // Every session of the pool, not just the first: hold three at once.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(pool.acquire().await.expect("a session"));
    }
    for session in &mut sessions {
        for (setting, expected) in [
            ("statement_timeout", "300ms"),
            ("idle_in_transaction_session_timeout", "4s"),
            ("tcp_keepalives_idle", "45"),
            ("tcp_keepalives_interval", "7"),
            ("tcp_keepalives_count", "4"),
            ("search_path", "oms"),
        ] {
            let value: String =
                sqlx::query_scalar(&format!("SHOW {setting}")).fetch_one(&mut **session).await.expect("SHOW");
            assert_eq!(value, expected, "{setting}");
        }
    }
    drop(sessions);

    let error = sqlx::query("SELECT pg_sleep(3)").execute(&pool).await.expect_err("cancelled by the statement timeout");
    let code = error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled: {error}");
    let error = anyhow::Error::from(error).context("handling a batch");
    assert_eq!(messaging::failure::classify(&error), messaging::failure::Failure::Transient, "retried, never parked");
    // The session survives the cancel: the next statement runs.
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.expect("the pool still works");
    assert_eq!(one, 1);

    // Operator commands' sessions have no statement timeout; the defaults hold otherwise.
    let operator = migrations::Sessions::default().without_statement_timeout();
    let pool =
        migrations::connect_and_migrate_with(&url, "oms", 1, &operator, &migrations::OMS).await.expect("connecting");
    let shown: (String, String) = sqlx::query_as(
        "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')",
    )
    .fetch_one(&pool)
    .await
    .expect("SHOW");
    assert_eq!(shown, ("0".to_owned(), "1min".to_owned()));
    pool.close().await;
    // The database is left for scripts/test to drop when the run ends: a DROP DATABASE
    // holds a transaction id while it checkpoints (seen: over 30 s under the suite's
    // load), and the commit-ordered feeds of every other test on the server wait
    // behind it.
}
