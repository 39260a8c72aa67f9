//! The saga ships what an order holds when its shipment names no products: an
//! `OrderStatusChanged` 1.0, written by an OMS older than shipments naming products
//! (orders shipped before the upgrade, or during it while the OMS is still the older
//! one). The saga's handler is driven directly with the messages the broker would
//! deliver, over real PostgreSQL: exactly once, whatever is redelivered or replayed;
//! and the service's own saga is given them through the shared broker, on topics of
//! the test's own.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use domain::OrderId;
use inventory_saga::products::Products;
use inventory_saga::saga::ReservationSaga;
use messaging::{Envelope, Handled, IncomingMessage, MessageHandler, Verdict};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, event_types, spawn_app, spawn_app_with};

/// An order event as an OMS older than shipments naming products published it: every
/// type at 1.0.
fn older_oms_event(order_id: OrderId, sequence: i64, event_type: &str, payload: Value) -> IncomingMessage {
    let published = Envelope {
        event_id: uuid::Uuid::new_v4(),
        aggregate_type: "Order".to_owned(),
        aggregate_id: order_id.to_string(),
        sequence,
        event_type: event_type.to_owned(),
        event_version: "1.0".to_owned(),
        occurred_at: "2026-11-01T10:00:00Z".to_owned(),
        correlation_id: "checkout-42".to_owned(),
        causation_id: "req-1".to_owned(),
        payload,
    };
    IncomingMessage::carrying("oms.order-events", sequence, &published)
}

fn placed(order_id: OrderId, items: Value) -> IncomingMessage {
    older_oms_event(order_id, 1, "OrderPlaced", json!({"userId": "alice", "items": items}))
}

/// A status change as an OMS older than shipments naming products wrote it.
fn status_1_0(order_id: OrderId, sequence: i64, status: &str) -> IncomingMessage {
    older_oms_event(order_id, sequence, "OrderStatusChanged", json!({"status": status}))
}

/// The saga as the service runs it, on `app`'s database.
fn saga(app: &TestApp) -> ReservationSaga {
    ReservationSaga::new(Arc::new(Products::new(app.pool.clone())))
}

async fn handle(saga: &ReservationSaga, messages: &[IncomingMessage]) -> Vec<Verdict> {
    saga.handle(messages).await.expect("the batch is handled")
}

/// What every product holds per order equals the fold of its events.
async fn assert_rows_are_the_fold(app: &TestApp) {
    let differences = inventory_saga::reservations::differences(&app.pool).await.expect("compared");
    assert!(differences.is_empty(), "the rows differ from the fold of the events: {differences:?}");
}

#[tokio::test]
async fn a_shipment_naming_no_products_ships_what_the_order_holds_exactly_once() {
    let app = spawn_app().await;
    for (product, units) in [("mug", 10), ("tea", 5), ("cup", 4)] {
        app.given_product(product, units, 1).await;
    }
    let (shipped, other) = (OrderId::generate(), OrderId::generate());
    let saga = saga(&app);
    let history = [
        placed(
            shipped,
            json!([{"productId": "mug", "quantity": 2}, {"productId": "tea", "quantity": 1}, {"productId": "cup", "quantity": 1}]),
        ),
        older_oms_event(
            shipped,
            2,
            "OrderItemsChanged",
            json!({"items": [{"productId": "cup", "quantity": 1, "status": "CANCELED"}]}),
        ),
        status_1_0(shipped, 5, "PAID"),
    ];
    for message in &history {
        handle(&saga, std::slice::from_ref(message)).await;
    }
    handle(&saga, &[placed(other, json!([{"productId": "mug", "quantity": 3}]))]).await;
    assert_eq!(app.stock("mug").await, (10, 5, 5, 0), "(onHand, available, reserved, shipped) before");

    let shipment = status_1_0(shipped, 6, "SHIPPED");
    assert_eq!(handle(&saga, std::slice::from_ref(&shipment)).await, [Ok(Handled::Applied)]);
    assert_eq!(app.stock("mug").await, (8, 5, 3, 2), "the order's 2 units left; the other order's 3 stay");
    assert_eq!(app.stock("tea").await, (4, 4, 0, 1));
    assert_eq!(app.stock("cup").await, (4, 4, 0, 0), "the canceled item's unit was released, not shipped");
    let mug = app.assert_history_explains_product("mug").await;
    let last = mug.last().expect("events");
    assert_eq!(
        (&last["eventType"], &last["payload"]),
        (&json!("StockShipped"), &json!({"orderId": shipped.to_string(), "quantity": 2, "revision": 6})),
        "under the shipment's revision"
    );
    assert_eq!(last["correlationId"], "checkout-42", "in the customer's correlation");
    assert!(!event_types(&app.history("cup").await).contains(&"StockShipped"));

    // Redelivered alone, twice in one batch, with the order's whole history replayed
    // before it, and followed by the delivery: nothing more.
    let events = app.count_events().await;
    let replayed: Vec<IncomingMessage> = history.iter().cloned().chain([shipment.clone()]).collect();
    for batch in [vec![shipment.clone()], vec![shipment.clone(), shipment.clone()], replayed] {
        let verdicts = handle(&saga, &batch).await;
        assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    }
    handle(&saga, &[status_1_0(shipped, 7, "DELIVERED")]).await;
    assert_eq!(app.count_events().await, events, "nothing decided again");
    assert_eq!(app.stock("mug").await, (8, 5, 3, 2));
    assert_eq!(app.stock("tea").await, (4, 4, 0, 1));
    assert_rows_are_the_fold(&app).await;
}

#[tokio::test]
async fn a_history_replayed_in_one_batch_ships_what_the_batch_itself_reserved() {
    // A new consumer group reading the topic from the start on a fresh store: the
    // placement and the shipment arrive together, the rows hold nothing yet.
    let app = spawn_app().await;
    app.given_product("mug", 10, 1).await;
    let order_id = OrderId::generate();
    let batch = [placed(order_id, json!([{"productId": "mug", "quantity": 4}])), status_1_0(order_id, 5, "SHIPPED")];
    assert_eq!(handle(&saga(&app), &batch).await, [Ok(Handled::Applied), Ok(Handled::Applied)]);
    assert_eq!(app.stock("mug").await, (6, 6, 0, 4));
    let events = app.count_events().await;
    handle(&saga(&app), &batch).await;
    assert_eq!(app.count_events().await, events, "the batch again decides nothing");
    assert_rows_are_the_fold(&app).await;
}

#[tokio::test]
async fn a_shipment_naming_no_products_of_an_order_holding_nothing_changes_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 2, 1).await;
    let (unknown, rejected, canceled) = (OrderId::generate(), OrderId::generate(), OrderId::generate());
    let saga = saga(&app);
    handle(&saga, &[placed(rejected, json!([{"productId": "mug", "quantity": 5}]))]).await;
    handle(&saga, &[placed(canceled, json!([{"productId": "mug", "quantity": 1}]))]).await;
    handle(&saga, &[older_oms_event(canceled, 2, "OrderCanceled", json!({"items": ["mug"]}))]).await;
    let events = app.count_events().await;
    let before = app.get_product("mug").await.data(StatusCode::OK).clone();

    let shipments =
        [status_1_0(unknown, 4, "SHIPPED"), status_1_0(rejected, 4, "SHIPPED"), status_1_0(canceled, 4, "SHIPPED")];
    assert_eq!(handle(&saga, &shipments).await, [Ok(Handled::Applied), Ok(Handled::Applied), Ok(Handled::Applied)]);
    assert_eq!(app.count_events().await, events, "nothing decided");
    assert_eq!(app.get_product("mug").await.data(StatusCode::OK), &before);
    let paid = status_1_0(unknown, 3, "PAID");
    assert_eq!(handle(&saga, &[paid]).await, [Ok(Handled::Ignored)], "other status changes ask nothing");
}

/// The broker tests use: `KAFKA_BROKERS`, else the development broker's address.
fn broker() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

#[tokio::test]
async fn the_services_saga_ships_what_the_order_holds_for_a_shipment_from_an_older_oms_on_the_broker() {
    let topic = format!("ship-held-test-{}-orders", uuid::Uuid::new_v4().simple());
    let on_test_topics = |kafka: &mut messaging::KafkaSettings| {
        kafka.brokers = broker();
        kafka.topics.order_events = topic.clone();
        kafka.topics.order_outcomes = format!("{topic}-outcomes");
        kafka.topics.stock_alerts = format!("{topic}-alerts");
        // One partition: the messages are consumed in the order produced.
        kafka.partitions = 1;
    };
    let app = spawn_app_with(|settings| on_test_topics(&mut settings.kafka)).await;
    app.given_product("mug", 10, 1).await;
    app.given_product("tea", 5, 1).await;
    let (shipped, other, later) = (OrderId::generate(), OrderId::generate(), OrderId::generate());
    app.reserve("mug", shipped, 2, 1).await;
    app.reserve("tea", shipped, 1, 1).await;
    app.reserve("mug", other, 3, 1).await;

    let mut kafka = inventory_saga::Cli::try_parse_from(["inventory"]).expect("the default settings").serve.kafka;
    on_test_topics(&mut kafka);
    let producer = messaging::redrive::Redriver::new(&kafka).expect("a producer");
    // The shipment, delivered twice, then an order placed later, whose reservation
    // shows that both copies were handled.
    let shipment = status_1_0(shipped, 6, "SHIPPED");
    let placement = placed(later, json!([{"productId": "mug", "quantity": 1}]));
    for message in [&shipment, &shipment, &placement] {
        let (key, payload) = (message.key.as_deref().map(str::as_bytes), message.payload.as_deref());
        producer.produce(0, &topic, key, payload, &[]).await.expect("produced");
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.stock("mug").await.2 != 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the saga did not consume the messages: {:?}",
            app.stock("mug").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.stock("mug").await, (8, 4, 4, 2), "(onHand, available, reserved, shipped): 2 shipped, 3 + 1 held");
    assert_eq!(app.stock("tea").await, (4, 4, 0, 1));
    for product in ["mug", "tea"] {
        let history = app.assert_history_explains_product(product).await;
        let shipments = event_types(&history).into_iter().filter(|t| *t == "StockShipped").count();
        assert_eq!(shipments, 1, "{product}: shipped once, though delivered twice");
    }
    assert_rows_are_the_fold(&app).await;
}
