//! What downstream consumers read on the topics (issue 16, item 6): a stock alert
//! follows every change of a product's level, whichever kind of change moved it
//! (adjustment, threshold, reservation, release by an expiry or a customer, shipment),
//! once and in the product's order; and an order's cancellation says whether the
//! customer canceled it or the payment deadline did.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use domain::order::{CancelReason, OrderEvent};
use messaging::Envelope;
use messaging::messages::order_events::OrderEventMessage;
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::broker::{self, ReadMessage};
use system_tests::{Api, System, SystemOptions};

use crate::scenarios::wait_for;

const RESOLVE: Duration = Duration::from_secs(30);

/// Every message of `topic` published so far.
async fn read(system: &System, topic: &str) -> Vec<ReadMessage> {
    broker::read_topic_async(&system.kafka, topic, Duration::from_secs(30)).await.expect("reading the topic")
}

/// The envelopes of `topic` that `wanted` keeps, in topic order, once there are at
/// least `count` of them; then read once more after a pause, so that a late duplicate
/// or an extra message shows.
async fn envelopes(
    system: &System,
    topic: &str,
    count: usize,
    wanted: impl Fn(&Envelope) -> bool,
) -> Vec<(ReadMessage, Envelope)> {
    let kept = |messages: Vec<ReadMessage>| -> Vec<(ReadMessage, Envelope)> {
        messages
            .into_iter()
            .map(|message| {
                let envelope: Envelope =
                    serde_json::from_slice(message.payload.as_deref().expect("a body")).expect("an envelope");
                (message, envelope)
            })
            .filter(|(_, envelope)| wanted(envelope))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + RESOLVE;
    loop {
        let found = kept(read(system, topic).await);
        if found.len() >= count {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} of {count} messages on {topic}: {found:#?}", found.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    kept(read(system, topic).await)
}

/// `(available, reserved, onHand, shipped)` of a product now.
async fn stock(api: &Api, product_id: &str) -> (i64, i64, i64, i64) {
    crate::lifecycle::stock(&api.product(product_id).await.expect("GET product"))
}

async fn wait_for_stock(api: &Api, product_id: &str, expected: (i64, i64, i64, i64)) {
    wait_for(|| async { stock(api, product_id).await == expected }).await;
}

async fn set_threshold(api: &Api, product_id: &str, threshold: u32) {
    let url = format!("{}/inventory/products/{product_id}", api.inventory);
    let response = api.http.put(url).json(&json!({"lowStockThreshold": threshold})).send().await.expect("PUT");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "threshold {threshold}: {}",
        response.text().await.unwrap_or_default()
    );
}

async fn set_status(api: &Api, order_id: &str, status: &str) {
    let (code, body) = api.update_order(order_id, json!({"status": status})).await.expect("PUT order");
    assert_eq!(code, StatusCode::OK, "{status}: {body}");
}

/// Places an order and waits until it is resolved; returns its id and status.
async fn placed(api: &Api, lines: &[(&str, u32)]) -> (String, String) {
    let order = api.place_order("u-1", lines).await.expect("POST order");
    let id = order["orderId"].as_str().expect("an order id").to_owned();
    let order = api.resolved_order(&id, RESOLVE).await.expect("resolved");
    (id, order["status"].as_str().expect("a status").to_owned())
}

#[tokio::test]
async fn a_stock_alert_follows_every_change_of_level_once_and_in_the_products_order() {
    // Orders meant to stay are paid at once; the one meant to expire is left unpaid.
    let options = SystemOptions { oms_flags: vec!["--payment-timeout-ms=3000".into()], ..SystemOptions::default() };
    let system = System::start(options).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 3).await.expect("mug");

    // Adjustments: damaged units take it low, lost units out, found units back.
    api.adjust("mug", -7, "DAMAGED").await.expect("damaged");
    api.adjust("mug", -3, "LOST").await.expect("lost");
    api.adjust("mug", 8, "FOUND").await.expect("found");
    // The threshold: raised above what is available (low), lowered again (no alert).
    set_threshold(api, "mug", 10).await;
    set_threshold(api, "mug", 2).await;
    assert_eq!(stock(api, "mug").await, (8, 0, 8, 0));

    // Reservations: one that leaves it in stock, one that takes the rest.
    let (shipped, status) = placed(api, &[("mug", 2)]).await;
    assert_eq!(status, "EXECUTED");
    set_status(api, &shipped, "PAID").await;
    let (expired, status) = placed(api, &[("mug", 6)]).await;
    assert_eq!(status, "EXECUTED");
    wait_for_stock(api, "mug", (0, 8, 8, 0)).await;

    // The payment deadline releases the unpaid order's units: back in stock.
    wait_for(|| async { api.order(&expired).await.expect("GET order")["status"] == "CANCELED" }).await;
    wait_for_stock(api, "mug", (6, 2, 8, 0)).await;

    // Reservations into low and out of stock; customers' cancellations release them,
    // the first back in stock, the second from low to in stock (no alert).
    let (low, status) = placed(api, &[("mug", 4)]).await;
    assert_eq!(status, "EXECUTED");
    set_status(api, &low, "PAID").await;
    let (out, status) = placed(api, &[("mug", 2)]).await;
    assert_eq!(status, "EXECUTED");
    set_status(api, &out, "PAID").await;
    wait_for_stock(api, "mug", (0, 8, 8, 0)).await;
    set_status(api, &out, "CANCELED").await;
    wait_for_stock(api, "mug", (2, 6, 8, 0)).await;
    set_status(api, &low, "CANCELED").await;
    wait_for_stock(api, "mug", (6, 2, 8, 0)).await;

    // A shipment takes its units out of reserved and on hand: available, and so the
    // level, stay as they were.
    set_status(api, &shipped, "SHIPPED").await;
    wait_for_stock(api, "mug", (6, 0, 6, 2)).await;
    // All that is left can be removed: out of stock.
    api.adjust("mug", -6, "DAMAGED").await.expect("damaged after the shipment");
    assert_eq!(stock(api, "mug").await, (0, 0, 0, 2));

    // What caused each alert (the change and, for a reservation or a release, its
    // order), what it says and the units it reports.
    let expected: Vec<(&str, Option<&str>, &str, u64)> = vec![
        ("StockAdjusted", None, "LowStockReached", 3),
        ("StockAdjusted", None, "OutOfStock", 0),
        ("StockAdjusted", None, "BackInStock", 8),
        ("LowStockThresholdChanged", None, "LowStockReached", 8),
        ("StockReserved", Some(&expired), "OutOfStock", 0),
        ("StockReleased", Some(&expired), "BackInStock", 6),
        ("StockReserved", Some(&low), "LowStockReached", 2),
        ("StockReserved", Some(&out), "OutOfStock", 0),
        ("StockReleased", Some(&out), "BackInStock", 2),
        ("StockAdjusted", None, "OutOfStock", 0),
    ];
    let history = api.product_events("mug").await.expect("the product's history");
    let alert_types = ["LowStockReached", "OutOfStock", "BackInStock"];
    let is_alert = |event: &Value| alert_types.iter().any(|t| event["eventType"] == *t);
    // The history holds each kind of change, and an alert only right after the change
    // that caused it (never after a shipment, a release from low or a lowered threshold).
    for kind in ["StockAdjusted", "LowStockThresholdChanged", "StockReserved", "StockReleased", "StockShipped"] {
        assert!(history.iter().any(|e| e["eventType"] == kind), "{kind} in the history: {history:#?}");
    }
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let caused: Vec<(Option<String>, Option<String>, Option<String>)> = history
        .windows(2)
        .filter(|pair| is_alert(&pair[1]))
        .map(|pair| (text(&pair[0]["eventType"]), text(&pair[0]["payload"]["orderId"]), text(&pair[1]["eventType"])))
        .collect();
    let expected_causes: Vec<(Option<String>, Option<String>, Option<String>)> = expected
        .iter()
        .map(|(cause, order, alert, _)| {
            (Some((*cause).to_owned()), order.map(str::to_owned), Some((*alert).to_owned()))
        })
        .collect();
    assert_eq!(caused, expected_causes, "alerts in the history and their causes: {history:#?}");
    let stored: Vec<(String, i64, String)> = history
        .iter()
        .filter(|e| is_alert(e))
        .map(|e| {
            let id = e["eventId"].as_str().expect("an event id").to_owned();
            (id, e["sequence"].as_i64().expect("a sequence"), e["eventType"].as_str().expect("a type").to_owned())
        })
        .collect();

    let topic = system.kafka.topics.stock_alerts.clone();
    let alerts = envelopes(&system, &topic, expected.len(), |e| e.aggregate_id == "mug").await;
    let published: Vec<(String, i64, String)> =
        alerts.iter().map(|(_, e)| (e.event_id.to_string(), e.sequence, e.event_type.clone())).collect();
    assert!(
        alerts.windows(2).all(|pair| pair[0].1.sequence < pair[1].1.sequence),
        "in the product's order, none twice: {published:?}"
    );
    assert_eq!(published, stored, "every alert of the history published, none missing");
    let said: Vec<(&str, u64)> = alerts
        .iter()
        .map(|(_, e)| (e.event_type.as_str(), e.payload["available"].as_u64().expect("available units")))
        .collect();
    let expected_said: Vec<(&str, u64)> = expected.iter().map(|(.., alert, units)| (*alert, *units)).collect();
    assert_eq!(said, expected_said, "what each alert says");
    let partitions: HashSet<i32> = alerts.iter().map(|(m, _)| m.partition).collect();
    assert_eq!(partitions.len(), 1, "one product, one partition: {partitions:?}");
    for (message, envelope) in &alerts {
        assert_eq!(message.key.as_deref(), Some("mug"), "keyed by product id: {envelope:?}");
        assert_eq!((envelope.aggregate_type.as_str(), envelope.event_version.as_str()), ("Product", "1.0"));
        assert_eq!(envelope.payload, json!({"productId": "mug", "available": envelope.payload["available"]}));
        assert_eq!(message.header("correlation-id"), Some(envelope.correlation_id.as_str()), "{envelope:?}");
    }
    system.stop().await;
}

#[tokio::test]
async fn a_cancellation_on_the_order_topic_tells_a_customer_cancel_from_a_payment_timeout() {
    let options = SystemOptions { oms_flags: vec!["--payment-timeout-ms=2000".into()], ..SystemOptions::default() };
    let system = System::start(options).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 0).await.expect("mug");

    let (paid, _) = placed(api, &[("mug", 1)]).await;
    set_status(api, &paid, "PAID").await;
    let (canceled_resolved, _) = placed(api, &[("mug", 1)]).await;
    set_status(api, &canceled_resolved, "CANCELED").await;
    let (canceled_paid, _) = placed(api, &[("mug", 1)]).await;
    set_status(api, &canceled_paid, "PAID").await;
    set_status(api, &canceled_paid, "CANCELED").await;
    let (unpaid, status) = placed(api, &[("mug", 1)]).await;
    assert_eq!(status, "EXECUTED");
    let (unpaid_partly, status) = placed(api, &[("mug", 1), ("ghost", 1)]).await;
    assert_eq!(status, "PARTIALLY_EXECUTED");
    for id in [&unpaid, &unpaid_partly] {
        wait_for(|| async { api.order(id).await.expect("GET order")["status"] == "CANCELED" }).await;
    }

    let expected: HashMap<&str, (CancelReason, &str, Value)> = HashMap::from([
        (canceled_resolved.as_str(), (CancelReason::CanceledByCustomer, "CANCELED_BY_CUSTOMER", json!(["mug"]))),
        (canceled_paid.as_str(), (CancelReason::CanceledByCustomer, "CANCELED_BY_CUSTOMER", json!(["mug"]))),
        (unpaid.as_str(), (CancelReason::PaymentTimeout, "PAYMENT_TIMEOUT", json!(["mug"]))),
        (unpaid_partly.as_str(), (CancelReason::PaymentTimeout, "PAYMENT_TIMEOUT", json!(["mug", "ghost"]))),
    ]);
    let topic = system.kafka.topics.order_events.clone();
    let cancellations = envelopes(&system, &topic, expected.len(), |e| e.event_type == "OrderCanceled").await;
    let mut seen = HashSet::new();
    for (message, envelope) in &cancellations {
        let order = envelope.aggregate_id.as_str();
        let (reason, wire, items) =
            expected.get(order).unwrap_or_else(|| panic!("no other order is canceled: {envelope:?}"));
        assert!(seen.insert(order), "each order canceled once: {cancellations:#?}");
        assert_eq!(message.key.as_deref(), Some(order), "keyed by order id");
        assert_eq!(envelope.event_version, "2.0", "{envelope:?}");
        assert_eq!(envelope.payload, json!({"items": items, "reason": wire}), "the payload as published");
        // What a downstream consumer with the shared message type reads.
        let read = OrderEventMessage::decode(envelope).expect("a readable order event");
        assert!(matches!(read.event, OrderEvent::OrderCanceled { reason: r, .. } if r == *reason), "{read:?}");
        let order_now = api.order(order).await.expect("GET order");
        assert_eq!(order_now["orderItems"][0]["reason"], *wire, "the mug item as the OMS shows it: {order_now}");
    }
    assert_eq!(seen.len(), expected.len(), "every cancellation published: {cancellations:#?}");
    assert_eq!(api.order(&paid).await.expect("GET order")["status"], "PAID", "a paid order does not expire");
    system.stop().await;
}
