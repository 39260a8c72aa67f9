//! `POST /oms/orders` with an `Idempotency-Key`: retries, even concurrent ones, give
//! the same order and never a second one.

use std::collections::HashSet;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{order_id, spawn_app};

async fn placed_events(app: &crate::helpers::TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
        .fetch_one(&app.pool)
        .await
        .expect("counting OrderPlaced events")
}

#[tokio::test]
async fn twenty_concurrent_placements_with_one_key_create_one_order() {
    let app = spawn_app().await;
    let body = json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}, {"productId": "tea", "quantity": 1}]});

    let answers = join_all((0..20).map(|_| app.post_order_with(&body, &[("idempotency-key", "checkout-7f3a")]))).await;

    let orders: Vec<_> = answers.iter().map(|answer| answer.data(StatusCode::CREATED).clone()).collect();
    let ids: HashSet<String> = orders.iter().map(order_id).collect();
    assert_eq!(ids.len(), 1, "every retry answers the same order, got {ids:?}");
    for order in &orders {
        assert_eq!(order, &orders[0], "every retry answers the order exactly as placed");
    }
    assert_eq!(orders[0]["version"], 1);
    assert_eq!(placed_events(&app).await, 1, "exactly one OrderPlaced");
    assert_eq!(app.count_events().await, 1);
    let page = app.list("userId=alice").await.data(StatusCode::OK).clone();
    assert_eq!(page["items"], json!([orders[0]]), "one order in the list");
    app.assert_history_explains_order(&order_id(&orders[0])).await;
}

#[tokio::test]
async fn a_retry_after_the_order_changed_answers_the_order_as_it_is_and_places_nothing() {
    let app = spawn_app().await;
    let body = json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]});
    let first = app.post_order_with(&body, &[("idempotency-key", "k-1")]).await.data(StatusCode::CREATED).clone();
    let id = order_id(&first);
    let canceled = app.put_order(&id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK).clone();

    let retry = app.post_order_with(&body, &[("idempotency-key", "k-1")]).await;

    assert_eq!(retry.data(StatusCode::CREATED), &canceled, "a late retry must not resurrect or duplicate the order");
    assert_eq!(app.count_events().await, 2);
}

#[tokio::test]
async fn reusing_a_key_for_another_body_is_refused() {
    let app = spawn_app().await;
    let first = app
        .post_order_with(
            &json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]}),
            &[("idempotency-key", "k-1")],
        )
        .await
        .data(StatusCode::CREATED)
        .clone();

    for (label, other) in [
        ("another quantity", json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 3}]})),
        ("another product", json!({"userId": "alice", "orderItems": [{"productId": "tea", "quantity": 2}]})),
        (
            "an extra item",
            json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}, {"productId": "tea", "quantity": 1}]}),
        ),
    ] {
        let answer = app.post_order_with(&other, &[("idempotency-key", "k-1")]).await;
        let message = answer.error(StatusCode::UNPROCESSABLE_ENTITY, label);
        assert!(message.contains("Idempotency-Key was already used"), "[{label}] message {message:?}");
    }
    assert_eq!(app.count_events().await, 1, "nothing stored for the refused reuses");
    assert_eq!(app.get_order(&order_id(&first)).await.data(StatusCode::OK), &first);
}

#[tokio::test]
async fn the_same_key_from_another_user_is_another_order() {
    let app = spawn_app().await;
    let items = json!([{"productId": "mug", "quantity": 2}]);

    let alices = app
        .post_order_with(&json!({"userId": "alice", "orderItems": items}), &[("idempotency-key", "k-1")])
        .await
        .data(StatusCode::CREATED)
        .clone();
    let bobs = app
        .post_order_with(&json!({"userId": "bob", "orderItems": items}), &[("idempotency-key", "k-1")])
        .await
        .data(StatusCode::CREATED)
        .clone();

    assert_ne!(order_id(&alices), order_id(&bobs));
    assert_eq!(alices["userId"], "alice");
    assert_eq!(bobs["userId"], "bob");
    assert_eq!(placed_events(&app).await, 2);
    for user in ["alice", "bob"] {
        let page = app.list(&format!("userId={user}")).await.data(StatusCode::OK).clone();
        assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{user} has one order");
    }
}

#[tokio::test]
async fn different_keys_are_different_orders() {
    let app = spawn_app().await;
    let body = json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]});
    let first = app.post_order_with(&body, &[("idempotency-key", "k-1")]).await.data(StatusCode::CREATED).clone();
    let second = app.post_order_with(&body, &[("idempotency-key", "k-2")]).await.data(StatusCode::CREATED).clone();
    assert_ne!(order_id(&first), order_id(&second));
    assert_eq!(placed_events(&app).await, 2);
}
