//! At-least-once delivery, exactly-once effects: replaying whole topics (reservations,
//! releases and shipments) changes nothing; a poison message is dead-lettered and the consumer goes on.

use std::time::Duration;

use futures::StreamExt;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde_json::{Value, json};
use system_tests::{Api, Service, System, SystemOptions, broker};

use crate::invariants::{assert_invariants, wait_until_resolved};

const RESOLVE: Duration = Duration::from_secs(30);

/// What a client and an auditor can see of a system at rest.
#[derive(Debug, PartialEq)]
struct Snapshot {
    orders: Vec<Value>,
    products: Vec<Value>,
    oms_events: i64,
    inventory_events: i64,
}

async fn snapshot(system: &System, api: &Api) -> Snapshot {
    let ids: Vec<(uuid::Uuid,)> = sqlx::query_as("SELECT order_id FROM order_view ORDER BY order_id")
        .fetch_all(&system.oms_pool)
        .await
        .expect("order ids");
    let orders = futures::stream::iter(ids)
        .map(|(id,)| async move { api.order(&id.to_string()).await.expect("GET order") })
        .buffered(16)
        .collect()
        .await;
    let products = api.all_products().await.expect("GET products");
    let count = "SELECT count(*) FROM events";
    Snapshot {
        orders,
        products,
        oms_events: sqlx::query_scalar(count).fetch_one(&system.oms_pool).await.expect("counting OMS events"),
        inventory_events: sqlx::query_scalar(count)
            .fetch_one(&system.inventory_pool)
            .await
            .expect("counting inventory events"),
    }
}

/// Waits until each `(group, topic)` has committed every message of its topic.
async fn wait_until_consumed(system: &System, groups: &[(&str, &str)], timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut lags = Vec::new();
        for (group, topic) in groups {
            let (kafka, group_name, topic_name) = (system.kafka.clone(), group.to_string(), topic.to_string());
            let lag = tokio::task::spawn_blocking(move || broker::group_lag(&kafka, &group_name, &topic_name))
                .await
                .expect("lag task");
            lags.push((group, topic, lag.map_err(|e| format!("{e:#}"))));
        }
        if lags.iter().all(|(_, _, lag)| lag.as_ref().is_ok_and(|lag| *lag == 0)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "consumer groups not caught up after {timeout:?}: {lags:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until nothing changes any more: the groups have consumed everything and two
/// snapshots a second apart are equal. Returns the last snapshot.
async fn settled(system: &System, api: &Api, groups: &[(&str, &str)], timeout: Duration) -> Snapshot {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        wait_until_consumed(system, groups, timeout).await;
        let before = snapshot(system, api).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = snapshot(system, api).await;
        if before == after {
            return after;
        }
        assert!(tokio::time::Instant::now() < deadline, "the system does not come to rest in {timeout:?}");
    }
}

/// Compares two snapshots, naming the first difference.
fn assert_same(label: &str, expected: &Snapshot, actual: &Snapshot) {
    assert_eq!(
        (actual.oms_events, actual.inventory_events),
        (expected.oms_events, expected.inventory_events),
        "{label}: events in the OMS and inventory stores"
    );
    assert_eq!(actual.orders.len(), expected.orders.len(), "{label}: number of orders");
    for (expected, actual) in expected.orders.iter().zip(&actual.orders) {
        assert_eq!(actual, expected, "{label}: order {}", expected["orderId"]);
    }
    assert_eq!(actual.products, expected.products, "{label}: products");
}

#[tokio::test]
async fn replaying_every_topic_to_new_consumer_groups_changes_nothing() {
    let mut system = System::start(SystemOptions::default()).await.expect("system");
    let api = system.api.clone();
    for (product, stock, threshold) in [("mug", 200, 20), ("tea", 25, 5), ("rare", 3, 1), ("spoon", 40, 0)] {
        api.add_product(product, stock, threshold).await.unwrap();
    }
    // Mixed demand: unknown products, a product that runs short, one that runs out.
    let lines = |i: usize| -> Vec<(&'static str, u32)> {
        match i % 10 {
            0 => vec![("ghost", 1)],
            1 => vec![("mug", 1), ("ghost", 2)],
            2 | 5 => vec![("rare", 2), ("spoon", 1)],
            3 | 7 => vec![("tea", 3)],
            _ => vec![("mug", 1 + (i % 4) as u32), ("spoon", 1), ("tea", 1)],
        }
    };
    let api_ref = &api;
    let placed: Vec<String> = futures::stream::iter(0..50usize)
        .map(|i| async move {
            api_ref.place_order(&format!("u-{}", i % 7), &lines(i)).await.expect("POST")["orderId"]
                .as_str()
                .expect("an order id")
                .to_owned()
        })
        .buffered(8)
        .collect()
        .await;
    wait_until_resolved(&system, Duration::from_secs(60)).await;
    // A couple of cancellations (releases) and a quantity change (a second request).
    for id in [&placed[4], &placed[6], &placed[3]] {
        let (status, body) = api.update_order(id, json!({"status": "CANCELED"})).await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) =
        api.update_order(&placed[8], json!({"orderItems": [{"productId": "mug", "quantity": 7}]})).await.unwrap();
    assert_eq!(status, 200, "{body}");
    // Shipments (their reservations consumed) and a delivery, of resolved orders.
    let mut shippable = Vec::new();
    for id in &placed[10..] {
        let order = api.order(id).await.expect("GET order");
        if matches!(order["status"].as_str(), Some("EXECUTED" | "PARTIALLY_EXECUTED")) {
            shippable.push(id.clone());
        }
    }
    assert!(shippable.len() >= 3, "resolved orders to ship: {shippable:?}");
    for (n, id) in shippable.iter().take(3).enumerate() {
        let steps: &[&str] = if n == 0 { &["PAID", "SHIPPED", "DELIVERED"] } else { &["PAID", "SHIPPED"] };
        for status in steps {
            let (code, body) = api.update_order(id, json!({"status": status})).await.unwrap();
            assert_eq!(code, 200, "{status}: {body}");
        }
    }
    wait_until_resolved(&system, RESOLVE).await;

    let topics = system.kafka.topics.clone();
    let (oms_group, inventory_group) = (system.oms_group.clone(), system.inventory_group.clone());
    let first_groups = [
        (inventory_group.as_str(), topics.order_events.as_str()),
        (oms_group.as_str(), topics.order_outcomes.as_str()),
    ];
    let before = settled(&system, &api, &first_groups, RESOLVE).await;
    assert!(before.orders.iter().any(|o| o["status"] == "CANCELED"), "some orders are canceled");
    assert!(before.orders.iter().any(|o| o["status"] == "PARTIALLY_EXECUTED"), "some orders are partially executed");
    assert!(before.orders.iter().any(|o| o["status"] == "EXECUTED"), "some orders are executed");
    assert!(before.products.iter().any(|p| p["shipped"].as_u64() > Some(0)), "some units are shipped");
    assert_invariants(&system).await;

    // Second instances in new consumer groups: they read every topic from offset 0.
    let replay_inventory = format!("inventory-replay-{}", system.run);
    let replay_oms = format!("oms-replay-{}", system.run);
    let inventory_url =
        system.start_instance(Service::Inventory, &replay_inventory).await.expect("second inventory service");
    let oms_url = system.start_instance(Service::Oms, &replay_oms).await.expect("second OMS");
    let replay_groups = [
        (replay_inventory.as_str(), topics.order_events.as_str()),
        (replay_oms.as_str(), topics.order_outcomes.as_str()),
    ];
    let all_groups: Vec<(&str, &str)> = first_groups.iter().chain(&replay_groups).copied().collect();
    let after = settled(&system, &api, &all_groups, Duration::from_secs(60)).await;
    assert_same("after a full redelivery", &before, &after);
    let second_instances = Api::new(oms_url, inventory_url);
    assert_same("seen through the second instances", &before, &snapshot(&system, &second_instances).await);
    assert_invariants(&system).await;
    system.stop().await;
}

/// Produces `payload` to every partition of `topic`, keyed `key`.
async fn produce_everywhere(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partitions: i32,
    key: &str,
    payload: &[u8],
) {
    for partition in 0..partitions {
        producer
            .send(
                FutureRecord::to(topic).partition(partition).key(key).payload(payload),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .unwrap_or_else(|(error, _)| panic!("producing to {topic}/{partition}: {error}"));
    }
}

/// Reads `topic` until it holds `count` messages.
async fn read_until(system: &System, topic: &str, count: usize, timeout: Duration) -> Vec<broker::ReadMessage> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let read = broker::read_topic_async(&system.kafka, topic, Duration::from_secs(10)).await;
        match read {
            Ok(messages) if messages.len() >= count => return messages,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "{topic} does not hold {count} messages after {timeout:?}: {:?}",
                other.map(|messages| messages.len())
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Poison messages on both consumed topics, on every partition; then orders that
/// must go through the same partitions.
async fn dead_letter_check(system: &System) {
    let api = &system.api;
    api.add_product("mug", 100, 0).await.expect("product added");
    // One order through first: both consumers are in their groups and working.
    let first = api.place_order("u-0", &[("mug", 1)]).await.expect("POST");
    api.resolved_order(first["orderId"].as_str().expect("an order id"), RESOLVE)
        .await
        .expect("the first order resolves");

    let topics = &system.kafka.topics;
    let partitions = system.kafka.partitions;
    let producer = broker::producer(&system.kafka).expect("producer");
    let malformed: &[u8] = b"this is {not JSON";
    let teleported = json!({
        "eventId": uuid::Uuid::new_v4(), "aggregateType": "Order", "aggregateId": uuid::Uuid::new_v4().to_string(), "sequence": 1,
        "eventType": "OrderTeleported", "eventVersion": "1.0", "occurredAt": "2024-01-01T00:00:00Z",
        "correlationId": "poison", "causationId": "poison", "payload": {"to": "mars"},
    });
    let teleported = serde_json::to_vec(&teleported).expect("serializable");
    produce_everywhere(&producer, &topics.order_events, partitions, "malformed", malformed).await;
    produce_everywhere(&producer, &topics.order_events, partitions, "teleported", &teleported).await;
    produce_everywhere(&producer, &topics.order_outcomes, partitions, "malformed", malformed).await;

    // Orders placed afterwards resolve: no partition is stuck behind a poison message.
    let placed: Vec<String> = futures::stream::iter(0..12)
        .map(|i| async move {
            api.place_order(&format!("u-{i}"), &[("mug", 1)]).await.expect("POST")["orderId"]
                .as_str()
                .expect("an order id")
                .to_owned()
        })
        .buffered(4)
        .collect()
        .await;
    for id in &placed {
        let order = api.resolved_order(id, RESOLVE).await.expect("an order placed after the poison messages resolves");
        assert_eq!(order["status"], "EXECUTED", "{order}");
    }

    let dead =
        read_until(system, &messaging::Topics::dead_letter(&topics.order_events), 2 * partitions as usize, RESOLVE)
            .await;
    assert_eq!(dead.len(), 2 * partitions as usize, "each poison message dead-lettered once: {dead:?}");
    for message in &dead {
        let reason = message.header("dlq-reason").unwrap_or_default();
        assert!(!reason.is_empty(), "dlq-reason header on {message:?}");
        let origin = message.header("dlq-origin").unwrap_or_default();
        assert!(
            origin.starts_with(&format!("{}/", topics.order_events)),
            "dlq-origin names the topic/partition/offset: {origin}"
        );
        match message.key.as_deref() {
            Some("malformed") => assert_eq!(message.payload.as_deref(), Some(malformed), "the body is kept"),
            Some("teleported") => {
                assert_eq!(message.payload.as_deref(), Some(teleported.as_slice()), "the body is kept");
                assert!(reason.contains("OrderTeleported"), "the reason names the unknown type: {reason}");
            }
            other => panic!("an unexpected dead letter keyed {other:?}: {message:?}"),
        }
    }
    let origins: std::collections::BTreeSet<&str> = dead.iter().filter_map(|m| m.header("dlq-origin")).collect();
    assert_eq!(origins.len(), dead.len(), "distinct origins");

    let dead_outcomes =
        read_until(system, &messaging::Topics::dead_letter(&topics.order_outcomes), partitions as usize, RESOLVE).await;
    assert_eq!(dead_outcomes.len(), partitions as usize, "each malformed outcome dead-lettered once");
    assert!(
        dead_outcomes.iter().all(|m| m.header("dlq-reason").is_some_and(|r| !r.is_empty())),
        "dlq-reason: {dead_outcomes:?}"
    );
    assert_invariants(system).await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_consumers_go_on() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    dead_letter_check(&system).await;
    system.stop().await;
}

/// The same check with the dead-letter topics created beforehand (as an operator or a
/// broker with topic auto-creation would): the consumer loop's dead-lettering itself.
#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_consumers_go_on_when_the_dead_letter_topics_exist() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let topics = &system.kafka.topics;
    let dead_letter_topics =
        [messaging::Topics::dead_letter(&topics.order_events), messaging::Topics::dead_letter(&topics.order_outcomes)];
    let names: Vec<&str> = dead_letter_topics.iter().map(String::as_str).collect();
    messaging::topics::ensure_topics(&system.kafka, &names).await.expect("creating the dead-letter topics");
    dead_letter_check(&system).await;
    system.stop().await;
}
