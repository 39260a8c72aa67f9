//! Invariant 3, Kafka side: every committed event reaches Kafka, keyed by its
//! aggregate, in per-aggregate order, with the envelope and correlation header.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use system_tests::{System, SystemOptions};

use crate::invariants::wait_until_resolved;

fn flag<'a>(system: &'a System, name: &str) -> &'a str {
    system.shared_flags.iter().find_map(|f| f.strip_prefix(&format!("--{name}="))).expect("flag set by the harness")
}

#[tokio::test]
async fn every_committed_order_event_is_published_once_in_order_with_its_envelope() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 20, 0).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let order = api.place_order(&format!("u-{i}"), &[("mug", 1), ("ghost", 1)]).await.unwrap();
        ids.push(order["orderId"].as_str().unwrap().to_owned());
    }
    for id in ids.iter().step_by(4) {
        api.update_order(id, serde_json::json!({"status": "CANCELED"})).await.unwrap();
    }
    wait_until_resolved(&system, Duration::from_secs(60)).await;

    let committed: Vec<(uuid::Uuid, String, i64, String)> =
        sqlx::query_as("SELECT event_id, aggregate_id, sequence, metadata->>'correlation_id' FROM events WHERE aggregate_type = 'Order'")
            .fetch_all(&system.oms_pool)
            .await
            .unwrap();
    let topic = flag(&system, "topic-order-events");
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", flag(&system, "kafka-brokers"))
        .set("group.id", format!("verify-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();

    let mut seen: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut last_sequence: HashMap<String, i64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < committed.len() {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} events published", seen.len(), committed.len()))
            .unwrap();
        let envelope: messaging::Envelope = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert_eq!(message.key(), Some(envelope.aggregate_id.as_bytes()), "keyed by order id");
        let header = messaging::envelope::header(message.headers(), "correlation-id");
        assert_eq!(header, Some(envelope.correlation_id.as_str()), "correlation id also in a header");
        // Redelivery may repeat a message, never reorder an order's events.
        let last = last_sequence.entry(envelope.aggregate_id.clone()).or_insert(0);
        assert!(
            envelope.sequence <= *last + 1,
            "order {} jumped from {} to {}",
            envelope.aggregate_id,
            last,
            envelope.sequence
        );
        *last = (*last).max(envelope.sequence);
        *seen.entry(envelope.event_id).or_default() += 1;
    }
    let published: HashSet<_> = seen.keys().copied().collect();
    let stored: HashSet<_> = committed.iter().map(|(id, ..)| *id).collect();
    assert_eq!(published, stored, "exactly the committed order events are published");
    system.stop().await;
}
