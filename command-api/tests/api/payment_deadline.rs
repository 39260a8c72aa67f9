//! The payment deadline: a resolved order not paid in time is canceled, its items
//! `CANCELED` for `PAYMENT_TIMEOUT`; once, with two instances; after a restart; never
//! once paid; and a payment racing it has one winner. Outcomes are recorded through
//! the application service (no inventory service here); passes are driven by hand
//! except where the service's own loop is under test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use command_api::orders::Orders;
use command_api::payment_deadline::expire_due;
use domain::order::{ItemOutcome, OrderCommand, RecordItemOutcome, RejectionReason};
use domain::{OrderId, ProductId};
use eventstore::EventMetadata;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, order_id, spawn_app, spawn_app_with};

const DEADLINE: Duration = Duration::from_millis(300);

/// Records the inventory service's answers for the items placed with the order.
async fn resolve(app: &TestApp, order_id: &str, outcomes: &[(&str, ItemOutcome)]) {
    let orders = Orders::new(app.pool.clone());
    let id: OrderId = order_id.parse().expect("an order id");
    for (product, outcome) in outcomes {
        let command = OrderCommand::RecordItemOutcome(RecordItemOutcome {
            product_id: ProductId::parse(*product).expect("a product id"),
            revision: 1,
            outcome: *outcome,
        });
        orders.execute(id, command, &EventMetadata::new("test", "test", "test")).await.expect("an outcome recorded");
    }
}

async fn executed_order(app: &TestApp) -> String {
    let id = order_id(&app.place_order("alice", &[("mug", 2), ("tea", 1)]).await);
    resolve(app, &id, &[("mug", ItemOutcome::Executed), ("tea", ItemOutcome::Executed)]).await;
    assert_eq!(app.get_order(&id).await.data(StatusCode::OK)["status"], "EXECUTED");
    id
}

fn expired_items() -> Value {
    json!([
        {"productId": "mug", "quantity": 2, "status": "CANCELED", "reason": "PAYMENT_TIMEOUT"},
        {"productId": "tea", "quantity": 1, "status": "CANCELED", "reason": "PAYMENT_TIMEOUT"},
    ])
}

/// The events of the order, as `/events` lists them: (type, payload).
async fn events(app: &TestApp, order_id: &str) -> Vec<(String, Value)> {
    let answer = app.events(order_id).await;
    answer
        .data(StatusCode::OK)
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| (e["eventType"].as_str().expect("a type").to_owned(), e["payload"].clone()))
        .collect()
}

#[tokio::test]
async fn the_service_cancels_a_resolved_order_not_paid_in_time() {
    let app = spawn_app_with(|settings| settings.payment_timeout_ms = DEADLINE.as_millis() as u64).await;
    let executed = executed_order(&app).await;
    let partial = order_id(&app.place_order("bob", &[("mug", 1), ("cup", 3)]).await);
    resolve(
        &app,
        &partial,
        &[("mug", ItemOutcome::Executed), ("cup", ItemOutcome::Rejected(RejectionReason::InsufficientStock))],
    )
    .await;
    let pending = order_id(&app.place_order("carol", &[("mug", 1)]).await);

    let started = Instant::now();
    loop {
        let order = app.get_order(&executed).await.data(StatusCode::OK).clone();
        if order["status"] == "CANCELED" {
            assert_eq!(order["orderItems"], expired_items());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not canceled 10 s after a 300 ms deadline: {order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Late by at most a pass, never early.
    let partial_order = loop {
        let order = app.get_order(&partial).await.data(StatusCode::OK).clone();
        if order["status"] == "CANCELED" || started.elapsed() > Duration::from_secs(10) {
            break order;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        partial_order["orderItems"],
        json!([
            {"productId": "mug", "quantity": 1, "status": "CANCELED", "reason": "PAYMENT_TIMEOUT"},
            {"productId": "cup", "quantity": 3, "status": "CANCELED", "reason": "INSUFFICIENT_STOCK"},
        ]),
        "a partially executed order expires too; the rejected item keeps its reason"
    );
    let canceled = events(&app, &executed).await.pop().expect("events");
    assert_eq!(
        canceled,
        ("OrderCanceled".to_owned(), json!({"items": ["mug", "tea"], "reason": "PAYMENT_TIMEOUT"})),
        "downstream consumers can tell a payment timeout from a customer's cancellation"
    );
    assert_eq!(app.get_order(&pending).await.data(StatusCode::OK)["status"], "PENDING", "a pending order waits");

    let paying = app.put_order(&executed, &json!({"status": "PAID"})).await;
    let message = paying.error(StatusCode::CONFLICT, "paying after the deadline");
    assert!(message.contains("CANCELED"), "{message}");

    let metrics =
        app.client.get(format!("{}/metrics", app.address)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.lines().any(|l| l == "payment_timeouts_total 2"), "counted: {metrics}");
}

#[tokio::test]
async fn two_instances_cancel_an_unpaid_order_once_and_never_a_paid_one() {
    let app = spawn_app().await;
    let unpaid = executed_order(&app).await;
    let paid = executed_order(&app).await;
    app.put_order(&paid, &json!({"status": "PAID"})).await.data(StatusCode::OK);
    let one = Orders::new(app.pool.clone());
    let other = Orders::new(app.pool.clone());

    // An hour's deadline is not yet due for orders placed a moment ago.
    let hour = Duration::from_secs(3600);
    assert_eq!(expire_due(&app.pool, &one, hour).await.expect("a pass"), 0, "not yet due");
    tokio::time::sleep(DEADLINE + Duration::from_millis(100)).await;
    let (a, b) = tokio::join!(expire_due(&app.pool, &one, DEADLINE), expire_due(&app.pool, &other, DEADLINE));
    assert_eq!(a.expect("a pass") + b.expect("a pass"), 1, "one instance cancels, the other finds it moved on");
    assert_eq!(expire_due(&app.pool, &other, DEADLINE).await.expect("a pass"), 0, "and never again");

    let types: Vec<String> = events(&app, &unpaid).await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["OrderPlaced", "ItemExecuted", "ItemExecuted", "OrderCanceled"]);
    assert_eq!(app.get_order(&paid).await.data(StatusCode::OK)["status"], "PAID", "a paid order never expires");
}

#[tokio::test]
async fn the_deadline_outlives_the_service_that_saw_the_order_resolve() {
    // Resolved while an OMS with the deadline off ran; that OMS goes away.
    let first = spawn_app().await;
    let id = executed_order(&first).await;
    let database = first.database_url.clone();
    drop(first);
    tokio::time::sleep(DEADLINE).await;

    let restarted = spawn_app_with(|settings| {
        settings.service.database.url = database.parse().expect("a URL");
        settings.payment_timeout_ms = DEADLINE.as_millis() as u64;
    })
    .await;
    let started = Instant::now();
    while restarted.get_order(&id).await.data(StatusCode::OK)["status"] != "CANCELED" {
        assert!(started.elapsed() < Duration::from_secs(10), "the restarted OMS did not expire the order");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(restarted.get_order(&id).await.data(StatusCode::OK)["orderItems"], expired_items());
}

#[tokio::test]
async fn a_payment_racing_the_deadline_has_one_winner_and_a_clear_answer() {
    let app = spawn_app().await;
    let orders = Arc::new(Orders::new(app.pool.clone()));
    let mut outcomes = (0, 0);
    for _ in 0..8 {
        let id = executed_order(&app).await;
        tokio::time::sleep(DEADLINE + Duration::from_millis(20)).await;
        let pay = json!({"status": "PAID"});
        let (paying, expired) = tokio::join!(app.put_order(&id, &pay), expire_due(&app.pool, &orders, DEADLINE));
        let expired = expired.expect("a pass");
        let order = app.get_order(&id).await.data(StatusCode::OK).clone();
        let types: Vec<String> = events(&app, &id).await.into_iter().map(|(t, _)| t).collect();
        if paying.status == StatusCode::OK {
            assert_eq!((expired, &order["status"]), (0, &json!("PAID")), "the payment won: nothing expired");
            assert_eq!(types.last().map(String::as_str), Some("OrderStatusChanged"));
            outcomes.0 += 1;
        } else {
            let message = paying.error(StatusCode::CONFLICT, "a payment that lost the race");
            assert!(message.contains("CANCELED") && message.contains("PAID"), "{message}");
            assert_eq!((expired, &order["orderItems"]), (1, &expired_items()), "the deadline won");
            assert_eq!(types.last().map(String::as_str), Some("OrderCanceled"));
            outcomes.1 += 1;
        }
        assert_eq!(types.len(), 4, "exactly one of payment and cancellation: {types:?}");
    }
    eprintln!("payments won {}, deadlines won {}", outcomes.0, outcomes.1);
}
