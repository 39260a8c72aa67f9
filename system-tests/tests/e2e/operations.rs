//! What operators see of a running system with the broker up: both services ready,
//! naming what they checked, and the saga's commands counted; the broker probe.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use system_tests::system::{System, SystemOptions};

use crate::scrape::total;

/// Polls `url` until it answers 200; its body. The broker probe reuses an answer
/// for a few seconds, so a first "down" may stand briefly after start-up.
async fn ready(http: &reqwest::Client, url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = http.get(url).send().await.expect("GET /health/ready");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        if status == 200 {
            return body;
        }
        assert!(Instant::now() < deadline, "{url} not ready: {status} {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_broker_up_both_services_are_ready_and_the_saga_is_counted() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    for base in [&api.oms, &api.inventory] {
        let body = ready(&api.http, &format!("{base}/health/ready")).await;
        assert_eq!(
            body["data"],
            json!({"status": "ready", "checks": {"broker": "up", "database": "up", "pipeline": "up"}}),
            "{base}"
        );
    }

    api.add_product("lamp", 5, 1).await.expect("product");
    let order = api.place_order("ops-user", &[("lamp", 2)]).await.expect("order");
    let order_id = order["orderId"].as_str().expect("orderId");
    let resolved = api.resolved_order(order_id, Duration::from_secs(30)).await.expect("resolved");
    assert_eq!(resolved["status"], "EXECUTED");

    let metrics = api.metrics(&api.inventory).await.expect("GET /metrics");
    // The commands of both services, and the pipeline between them: published,
    // consumed, reserved (both services record into this process's one recorder).
    let topics = &system.kafka.topics;
    for (name, labels) in [
        ("commands_total", vec![("aggregate", "Product"), ("command", "ReserveStock"), ("result", "accepted")]),
        ("commands_total", vec![("aggregate", "Order"), ("command", "RecordItemOutcome"), ("result", "accepted")]),
        ("relay_published_total", vec![("topic", topics.order_events.as_str())]),
        ("relay_published_total", vec![("topic", topics.order_outcomes.as_str())]),
        ("messages_consumed_total", vec![("topic", topics.order_events.as_str()), ("result", "applied")]),
        ("messages_consumed_total", vec![("topic", topics.order_outcomes.as_str()), ("result", "applied")]),
        ("saga_outcomes_total", vec![("outcome", "reserved")]),
    ] {
        assert!(total(&metrics, name, &labels) >= 1.0, "{name} {labels:?} counted: {metrics}");
    }
    system.stop().await;
}

#[tokio::test]
async fn the_broker_probe_answers_for_a_topic_not_created_yet_and_does_not_create_it() {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let topic = format!("t{}.not-created", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let settings = system_tests::broker::kafka_settings(&[
        format!("--kafka-brokers={}", system_tests::system::brokers()),
        format!("--topic-order-events={topic}"),
    ])
    .expect("settings");
    let probe = messaging::BrokerProbe::new(&settings).expect("probe");
    assert_eq!(probe.check().await, Ok(()), "the broker answered");

    let client: BaseConsumer = settings.admin_config().create().expect("client");
    let metadata =
        tokio::task::spawn_blocking(move || client.fetch_metadata(None, Duration::from_secs(5)).expect("metadata"))
            .await
            .expect("join");
    assert!(metadata.topics().iter().all(|t| t.name() != topic), "probing created {topic}");
}
