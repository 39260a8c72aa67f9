//! `PUT /oms/orders/{id}`: item changes and cancellation, each read back and
//! explained by the order's history.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, canceled_by_customer, order_id, pending, spawn_app};

/// Puts `body`, asserts 200, and checks that `GET` and the history agree with the answer.
async fn update(app: &TestApp, id: &str, body: Value) -> Value {
    let updated = app.put_order(id, &body).await.data(StatusCode::OK).clone();
    let read = app.get_order(id).await;
    assert_eq!(read.data(StatusCode::OK), &updated, "GET right after PUT {body} returns what PUT returned");
    app.assert_history_explains_order(id).await;
    updated
}

#[tokio::test]
async fn changing_a_quantity_keeps_the_item_pending_with_the_new_quantity() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 2), ("tea", 1)]).await);

    let order = update(&app, &id, json!({"orderItems": [{"productId": "mug", "quantity": 5}]})).await;

    assert_eq!(order["orderItems"], json!([pending("mug", 5), pending("tea", 1)]));
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["version"], 2);
    assert_eq!(app.count_events().await, 2);
}

#[tokio::test]
async fn adding_an_item_appends_it_pending() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 2)]).await);

    let order =
        update(&app, &id, json!({"orderItems": [{"productId": "plate", "quantity": 6, "status": "PENDING"}]})).await;

    assert_eq!(order["orderItems"], json!([pending("mug", 2), pending("plate", 6)]));
    assert_eq!(order["version"], 2);
}

#[tokio::test]
async fn canceling_an_item_marks_it_canceled_by_the_customer_and_leaves_the_rest_pending() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 2), ("tea", 1)]).await);

    let order = update(&app, &id, json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]})).await;

    assert_eq!(order["orderItems"], json!([pending("mug", 2), canceled_by_customer("tea", 1)]));
    assert_eq!(order["status"], "PENDING", "an order is pending while any item is");
    assert_eq!(order["version"], 2);
}

#[tokio::test]
async fn one_update_can_resize_add_and_cancel_items_at_once() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 2), ("tea", 1)]).await);

    let order = update(
        &app,
        &id,
        json!({"orderItems": [
            {"productId": "mug", "quantity": 3},
            {"productId": "tea", "status": "CANCELED"},
            {"productId": "plate", "quantity": 4}
        ]}),
    )
    .await;

    assert_eq!(order["orderItems"], json!([pending("mug", 3), canceled_by_customer("tea", 1), pending("plate", 4)]));
    assert_eq!(order["version"], 2, "one update is one event");
    assert_eq!(app.count_events().await, 2);
}

#[tokio::test]
async fn asking_again_for_a_canceled_item_puts_it_back_to_pending() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 2), ("tea", 1)]).await);
    update(&app, &id, json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]})).await;

    let order = update(&app, &id, json!({"orderItems": [{"productId": "tea", "quantity": 1}]})).await;

    assert_eq!(order["orderItems"], json!([pending("mug", 2), pending("tea", 1)]));
    assert_eq!(order["version"], 3);
}

#[tokio::test]
async fn an_update_that_changes_nothing_records_no_event() {
    let app = spawn_app().await;
    let placed = app.place_order("alice", &[("mug", 2), ("tea", 1)]).await;
    let id = order_id(&placed);
    update(&app, &id, json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]})).await;
    let before = app.get_order(&id).await.data(StatusCode::OK).clone();

    for body in [
        json!({"orderItems": [{"productId": "mug", "quantity": 2}]}),
        json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]}),
    ] {
        let order = update(&app, &id, body.clone()).await;
        assert_eq!(order, before, "{body} asks for what the order already is");
    }
    assert_eq!(app.count_events().await, 2, "no-op updates record nothing");
}

#[tokio::test]
async fn canceling_an_order_cancels_every_item() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 2), ("tea", 1), ("plate", 4)]).await);
    update(&app, &id, json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]})).await;

    let order = update(&app, &id, json!({"status": "CANCELED"})).await;

    assert_eq!(order["status"], "CANCELED");
    assert_eq!(
        order["orderItems"],
        json!([canceled_by_customer("mug", 2), canceled_by_customer("tea", 1), canceled_by_customer("plate", 4)])
    );
    assert_eq!(order["version"], 3);
    let history = app.events(&id).await.data(StatusCode::OK).clone();
    assert_eq!(history[2]["eventType"], "OrderCanceled");
    assert_eq!(
        history[2]["payload"]["items"],
        json!(["mug", "tea", "plate"]),
        "the cancellation names every product, so the inventory releases whatever it holds"
    );
}

#[tokio::test]
async fn items_and_cancellation_in_one_update_both_apply() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 2)]).await);

    let order =
        update(&app, &id, json!({"status": "CANCELED", "orderItems": [{"productId": "tea", "quantity": 1}]})).await;

    assert_eq!(order["status"], "CANCELED");
    assert_eq!(order["orderItems"], json!([canceled_by_customer("mug", 2), canceled_by_customer("tea", 1)]));
    let history = app.events(&id).await.data(StatusCode::OK).clone();
    let types: Vec<&str> =
        history.as_array().expect("array").iter().map(|e| e["eventType"].as_str().expect("type")).collect();
    assert_eq!(types, ["OrderPlaced", "OrderItemsChanged", "OrderCanceled"]);
    assert_eq!(order["version"], 3);
}
