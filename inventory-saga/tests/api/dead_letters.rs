//! `inventory dlq list|show|replay` as a process on the inventory schema: the same
//! commands as the OMS's (tested in depth there), with the inventory's own route for
//! events the relay could not publish.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::spawn_app;
use crate::operations::inventory;

#[tokio::test]
async fn dlq_lists_shows_and_replays_dead_letters_of_the_inventory_schema() {
    let app = spawn_app().await;
    app.given_product("mug", 0, 3).await;
    let history = app.history("mug").await;
    assert_eq!(history[1]["eventType"], "OutOfStock");
    let event_id: Uuid = history[1]["eventId"].as_str().expect("an event id").parse().expect("a UUID");
    let suffix = Uuid::new_v4().simple().to_string();
    let (orders, alerts) = (format!("dlq-test-{suffix}-orders"), format!("dlq-test-{suffix}-alerts"));
    let message: i64 = sqlx::query_scalar(
        "INSERT INTO dead_letters (source, origin, topic, reason, message_key, payload)
         VALUES ('consumer', $1, $2, 'correlationId holds a NUL', 'o-1', '\\x7b00ff7d') RETURNING id",
    )
    .bind(format!("{orders}/3/9"))
    .bind(&orders)
    .fetch_one(&app.pool)
    .await
    .expect("parking a message");
    let event: i64 = sqlx::query_scalar("INSERT INTO dead_letters (source, origin, topic, reason, event_id) VALUES ('relay', $1::text, $2, 'refused', $1) RETURNING id")
        .bind(event_id)
        .bind(&alerts)
        .fetch_one(&app.pool)
        .await
        .expect("parking an event");

    let listed = inventory(&app, &["dlq", "list", "--json", "--reason", "nul"]).await;
    assert!(listed.status.success(), "{listed:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.iter().map(|l| l["id"].as_i64()).collect::<Vec<_>>(), [Some(message)], "{lines:?}");
    let shown = inventory(&app, &["dlq", "show", &message.to_string(), "--json"]).await;
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("one JSON object");
    assert_eq!(shown["payload"], serde_json::json!({"base64": "ewD/fQ=="}));

    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let replayed = inventory(
        &app,
        &["dlq", "replay", "--source", "relay", "--kafka-brokers", &brokers, "--topic-stock-alerts", &alerts],
    )
    .await;
    let summary = String::from_utf8_lossy(&replayed.stdout);
    assert!(replayed.status.success() && summary.contains(&format!("re-driven 1 (1 to {alerts})")), "{replayed:?}");
    let marked: Vec<(i64, i32)> =
        sqlx::query_as("SELECT id, replays FROM dead_letters ORDER BY id").fetch_all(&app.pool).await.expect("reading");
    assert_eq!(marked, [(message, 0), (event, 1)], "the alert was published through the inventory's route and marked");
}
