//! Re-requests of stuck items, with the shared broker on topics of the test's own and
//! no inventory service: the order stays pending, so the OMS asks again, with backoff,
//! by republishing the relay's message with the header `re-request: 1`. Passes are
//! driven by hand (the app's own loop is off) on two instances at once, as with two
//! OMS processes.

use std::sync::Arc;
use std::time::Duration;

use command_api::orders::Orders;
use command_api::rerequests::Rerequests;
use messaging::ReplaceableProducer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::spawn_app_with;
use crate::topics::{self, broker};

/// (body, whether it carries `re-request: 1`) of every message of `topic`, read from
/// the beginning until `expected` arrived, and a second longer, so one too many shows.
async fn read_topic(topic: &str, expected: usize) -> Vec<(Value, bool)> {
    topics::read_topic(topic, expected)
        .await
        .into_iter()
        .map(|message| {
            let body = serde_json::from_slice(message.payload.as_deref().expect("a body")).expect("JSON");
            (body, message.header("re-request") == Some(b"1".as_slice()))
        })
        .collect()
}

#[tokio::test]
async fn a_stuck_item_is_asked_for_again_by_one_instance_with_backoff_until_it_resolves() {
    let topic = format!("rerequest-test-{}-orders", Uuid::new_v4().simple());
    let app = spawn_app_with(|settings| {
        settings.service.kafka.brokers = broker();
        settings.service.kafka.topics.order_events = topic.clone();
        settings.service.kafka.topics.order_outcomes = format!("{topic}-outcomes");
        settings.rerequest_after_ms = 0;
    })
    .await;
    let mut kafka = <command_api::Cli as clap::Parser>::try_parse_from(["oms"])
        .expect("the default settings parse")
        .serve
        .service
        .kafka;
    kafka.brokers = broker();
    kafka.topics.order_events = topic.clone();
    let after = Duration::from_millis(500);
    // Two instances, each with its own producer.
    let instance = || {
        let producer = Arc::new(ReplaceableProducer::new(kafka.producer_config(), "test").expect("a producer"));
        Rerequests::new(app.pool.clone(), Arc::new(Orders::new(app.pool.clone())), producer, &kafka, after)
    };
    let (one, other) = (instance(), instance());

    let placed = app.post_order(&json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}, {"productId": "tea", "quantity": 1}]})).await;
    let order_id = placed.data(StatusCode::CREATED)["orderId"].as_str().expect("an id").to_owned();
    assert_eq!(one.pass().await.expect("a pass"), 0, "not yet due");

    tokio::time::sleep(after + Duration::from_millis(100)).await;
    let (a, b) = tokio::join!(one.pass(), other.pass());
    assert_eq!(a.expect("a pass") + b.expect("a pass"), 1, "one instance asks, the other finds it claimed");
    assert_eq!(
        (one.pass().await.expect("a pass"), other.pass().await.expect("a pass")),
        (0, 0),
        "backoff: not again at once"
    );

    // The second re-request comes after twice the delay, not before.
    tokio::time::sleep(after + Duration::from_millis(200)).await;
    assert_eq!(one.pass().await.expect("a pass"), 0, "the delay doubled: not yet");
    tokio::time::sleep(after).await;
    assert_eq!(other.pass().await.expect("a pass"), 1, "due again after twice the delay");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM order_rerequests WHERE order_id = $1::uuid")
        .bind(&order_id)
        .fetch_one(&app.pool)
        .await
        .expect("a row");
    assert_eq!(attempts, 2);

    let messages = read_topic(&topic, 3).await;
    assert_eq!(messages.len(), 3, "the relay's message and two re-requests: {messages:?}");
    let (original, first_was_rerequest) = &messages[0];
    assert!(!first_was_rerequest, "the relay's message carries no re-request header");
    for (message, rerequest) in &messages[1..] {
        assert!(rerequest, "a re-request carries the header");
        assert_eq!(
            message, original,
            "a re-request is the relay's message, unchanged (same event id, sequence, payload)"
        );
    }
    assert_eq!(original["eventType"], "OrderPlaced");

    let metrics =
        app.client.get(format!("{}/metrics", app.address)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.lines().any(|l| l.starts_with("rerequests_total") && !l.ends_with(" 0")), "counted: {metrics}");
    let age = metrics.lines().find_map(|l| l.strip_prefix("pending_oldest_age_seconds ")).expect("the gauge");
    assert!(age.parse::<f64>().expect("a number") >= 1.0, "the oldest pending order's age: {age}");

    // Once the order is no longer pending, nothing is asked and its backoff is forgotten.
    let canceled = app
        .client
        .put(format!("{}/oms/orders/{order_id}", app.address))
        .json(&json!({"status": "CANCELED"}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(canceled.status(), StatusCode::OK);
    tokio::time::sleep(after * 4).await;
    assert_eq!(one.pass().await.expect("a pass"), 0);
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_rerequests").fetch_one(&app.pool).await.expect("count");
    assert_eq!(rows, 0, "the resolved order's backoff is forgotten");
}
