//! What operators use: metrics, readiness, and the settings behind them.

use clap::Parser;
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
    let placed = app.place_order("metrics-user", &[("mug", 1)]).await;
    let order_id = placed["orderId"].as_str().expect("orderId");
    app.send(Method::GET, &format!("/oms/orders/{order_id}"), &[], Body::None).await.data(StatusCode::OK);
    let twice = json!({"userId": "u", "orderItems": [{"productId": "mug", "quantity": 1}, {"productId": "mug", "quantity": 2}]});
    app.send(Method::POST, "/oms/orders", &[], Body::Json(twice))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "duplicate product");

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
        sample(&metrics, &format!(r#"commands_total{{aggregate="Order",command="PlaceOrder",result="{result}"}}"#))
    };
    assert!(commands("accepted") >= 1.0, "{metrics}");
    assert!(commands("rejected") >= 1.0, "the duplicate product is a refused command: {metrics}");
    let by_route = sample(&metrics, r#"http_requests_total{method="GET",route="/oms/orders/{orderId}",status="200"}"#);
    assert!(by_route >= 1.0, "requests are counted under the route template: {metrics}");
    assert!(!metrics.contains(order_id), "ids never become labels");
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
    let mut command = command_api::Cli::command();
    let help = command.render_long_help().to_string();
    for variable in [
        "DATABASE_URL",
        "DATABASE_MAX_CONNECTIONS",
        "OMS_HOST",
        "OMS_PORT",
        "OMS_DATABASE_SCHEMA",
        "OMS_CONSUMER_GROUP",
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
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_oms"))
        .arg("--help")
        .env("DATABASE_URL", "postgres://app:hunter2@db/orders")
        .env("KAFKA_SASL_PASSWORD", "hunter3")
        .env("KAFKA_PRODUCER_SSL_KEY_PASSWORD", "hunter4")
        .env("DATABASE_STATEMENT_TIMEOUT_MS", "12345")
        .output()
        .expect("running oms --help");
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
    let pool =
        migrations::connect_and_migrate_with(&url, "oms", 3, &settings.database_sessions.sessions(), &migrations::OMS)
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
    migrations::testing::drop_database(&url).await.expect("dropping the test database");
}
