//! Restocks and adjustments with an `Idempotency-Key`: the same key and body applied
//! once, even when sent at once; the same key with another body refused.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, Body, TestApp, event_types, spawn_app};

async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> Answer {
    app.send(Method::POST, &format!("/inventory/products/mug/{path}"), &[("idempotency-key", key)], Body::Json(body))
        .await
}

#[tokio::test]
async fn a_restock_retried_with_its_key_is_applied_once() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let first = post(&app, "restock", "delivery-1", json!({"quantity": 5})).await;
    assert_eq!(first.data(StatusCode::OK)["available"], 15);
    let retried = post(&app, "restock", "delivery-1", json!({"quantity": 5})).await;
    assert_eq!(retried.data(StatusCode::OK)["available"], 15, "applied once");
    let events = app.count_events().await;
    let other = post(&app, "restock", "delivery-1", json!({"quantity": 6})).await;
    let message = other.error(StatusCode::UNPROCESSABLE_ENTITY, "the key with another body");
    assert!(message.contains("Idempotency-Key"), "{message}");
    let adjusted = post(&app, "adjustments", "delivery-1", json!({"quantity": -1, "reason": "DAMAGED"})).await;
    adjusted.error(StatusCode::UNPROCESSABLE_ENTITY, "the restock's key on an adjustment");
    assert_eq!(app.count_events().await, events, "nothing stored");
    let another = post(&app, "restock", "delivery-2", json!({"quantity": 5})).await;
    assert_eq!(another.data(StatusCode::OK)["available"], 20, "another key is another delivery");
    assert_eq!(
        event_types(&app.assert_history_explains_product("mug").await),
        ["ProductAdded", "StockRestocked", "StockRestocked"]
    );
}

#[tokio::test]
async fn the_same_adjustment_sent_at_once_with_one_key_is_applied_once() {
    let app = spawn_app().await;
    app.given_product("mug", 50, 2).await;
    let body = json!({"quantity": -4, "reason": "LOST"});
    let answers = join_all((0..6).map(|_| post(&app, "adjustments", "count-7", body.clone()))).await;
    for answer in &answers {
        assert_eq!(answer.data(StatusCode::OK)["available"], 46, "every answer is the one adjustment");
    }
    let history = app.assert_history_explains_product("mug").await;
    assert_eq!(event_types(&history), ["ProductAdded", "StockAdjusted"]);
}

#[tokio::test]
async fn a_malformed_key_is_refused() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let events = app.count_events().await;
    for key in ["x".repeat(256), "with space".to_owned(), String::new()] {
        post(&app, "restock", &key, json!({"quantity": 1})).await.error(StatusCode::UNPROCESSABLE_ENTITY, &key);
    }
    assert_eq!(app.count_events().await, events, "nothing stored");
}

#[tokio::test]
async fn an_adjustments_key_reused_with_another_body_is_422_and_stores_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let first = post(&app, "adjustments", "count-3", json!({"quantity": -2, "reason": "DAMAGED"})).await;
    assert_eq!(first.data(StatusCode::OK)["onHand"], 8);
    let events = app.count_events().await;
    let before = app.get_product("mug").await.data(StatusCode::OK).clone();
    for (body, label) in [
        (json!({"quantity": -3, "reason": "DAMAGED"}), "another quantity"),
        (json!({"quantity": -2, "reason": "LOST"}), "another reason"),
        (json!({"quantity": 2, "reason": "FOUND"}), "the opposite correction"),
    ] {
        let reused = post(&app, "adjustments", "count-3", body).await;
        let message = reused.error(StatusCode::UNPROCESSABLE_ENTITY, label);
        assert!(message.contains("Idempotency-Key"), "[{label}] {message}");
    }
    let restock = post(&app, "restock", "count-3", json!({"quantity": 2})).await;
    restock.error(StatusCode::UNPROCESSABLE_ENTITY, "the adjustment's key on a restock");
    assert_eq!(app.count_events().await, events, "nothing stored");
    assert_eq!(app.get_product("mug").await.data(StatusCode::OK), &before, "the product is as it was");

    let retried = post(&app, "adjustments", "count-3", json!({"quantity": -2, "reason": "DAMAGED"})).await;
    assert_eq!(retried.data(StatusCode::OK)["onHand"], 8, "the same body is still the one adjustment");
    assert_eq!(app.count_events().await, events);
}
