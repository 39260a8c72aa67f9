//! Every status move reachable without the inventory saga. Moves out of EXECUTED,
//! PARTIALLY_EXECUTED, PAID and SHIPPED need item outcomes; the domain's unit tests
//! cover them, and the end-to-end tests will once the saga runs.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, canceled_by_customer, order_id, spawn_app};

/// Asserts that `body` is refused with 409, with a message holding every fragment, and
/// that the order and the event store are untouched.
async fn assert_conflict(app: &TestApp, id: &str, body: serde_json::Value, fragments: &[&str]) {
    let label = body.to_string();
    let before = app.get_order(id).await.data(StatusCode::OK).clone();
    let events_before = app.count_events().await;

    let answer = app.put_order(id, &body).await;

    let message = answer.error(StatusCode::CONFLICT, &label);
    for fragment in fragments {
        assert!(message.contains(fragment), "[{label}] message {message:?} should name {fragment:?}");
    }
    assert_eq!(app.count_events().await, events_before, "[{label}] a refused transition records nothing");
    assert_eq!(app.get_order(id).await.data(StatusCode::OK), &before, "[{label}] a refused transition changes nothing");
}

#[tokio::test]
async fn a_pending_order_cannot_be_paid_shipped_or_delivered() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 1)]).await);
    for target in ["PAID", "SHIPPED", "DELIVERED"] {
        assert_conflict(&app, &id, json!({"status": target}), &["PENDING", target]).await;
    }
}

#[tokio::test]
async fn a_pending_order_can_be_canceled() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 1)]).await);

    let order = app.put_order(&id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK).clone();

    assert_eq!(order["status"], "CANCELED");
    assert_eq!(order["orderItems"], json!([canceled_by_customer("mug", 1)]));
    assert_eq!(order["version"], 2);
    assert_eq!(app.count_events().await, 2);
}

#[tokio::test]
async fn canceling_a_canceled_order_again_answers_200_and_records_nothing() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 1)]).await);
    let canceled = app.put_order(&id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK).clone();

    let again = app.put_order(&id, &json!({"status": "CANCELED"})).await;

    assert_eq!(again.data(StatusCode::OK), &canceled, "a repeated cancellation answers the order as it is");
    assert_eq!(app.count_events().await, 2, "no second OrderCanceled");
}

#[tokio::test]
async fn a_canceled_order_cannot_be_paid_shipped_or_delivered() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 1)]).await);
    app.put_order(&id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK);
    for target in ["PAID", "SHIPPED", "DELIVERED"] {
        assert_conflict(&app, &id, json!({"status": target}), &["CANCELED", target]).await;
    }
}

#[tokio::test]
async fn items_of_a_canceled_order_cannot_change() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 1), ("tea", 2)]).await);
    app.put_order(&id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK);
    for items in [
        json!([{"productId": "mug", "quantity": 5}]),
        json!([{"productId": "mug", "quantity": 1}]),
        json!([{"productId": "plate", "quantity": 1}]),
    ] {
        assert_conflict(&app, &id, json!({"orderItems": items}), &["CANCELED", "can no longer change"]).await;
    }
    // Items and a status together are judged together: the item change refuses both.
    assert_conflict(
        &app,
        &id,
        json!({"status": "CANCELED", "orderItems": [{"productId": "mug", "quantity": 3}]}),
        &["CANCELED"],
    )
    .await;
}

#[tokio::test]
async fn canceling_an_item_of_a_canceled_order_is_answered_as_the_no_op_it_is() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 1), ("tea", 2)]).await);
    let canceled = app.put_order(&id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK).clone();

    // A retry of an item cancellation that the order cancellation already covers.
    let again = app.put_order(&id, &json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]})).await;

    assert_eq!(again.data(StatusCode::OK), &canceled);
    assert_eq!(app.count_events().await, 2, "nothing recorded");
}
