//! `PUT /inventory/products/{id}` (a new name and/or low-stock threshold) and
//! adjustments of the units on hand, each with the alert the new level implies.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Answer, Body, TestApp, event_types, spawn_app, stock_of};

#[tokio::test]
async fn a_rename_changes_the_name_and_the_same_update_again_changes_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let renamed = app.put_product("mug", &json!({"name": "Big mug"}), &[]).await;
    assert_eq!(renamed.header("etag"), Some("\"2\""));
    let product = renamed.data(StatusCode::OK);
    assert_eq!(
        (product["name"].as_str(), &product["available"], &product["version"]),
        (Some("Big mug"), &json!(10), &json!(2))
    );
    let again = app.put_product("mug", &json!({"name": "Big mug", "lowStockThreshold": 2}), &[]).await;
    assert_eq!(again.data(StatusCode::OK)["version"], 2, "nothing changed, nothing recorded");
    assert_eq!(event_types(&app.assert_history_explains_product("mug").await), ["ProductAdded", "ProductRenamed"]);
}

#[tokio::test]
async fn raising_the_threshold_to_the_stock_announces_low_stock() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let raised = app.put_product("mug", &json!({"lowStockThreshold": 10}), &[]).await;
    let product = raised.data(StatusCode::OK);
    assert_eq!((&product["lowStockThreshold"], product["stockStatus"].as_str()), (&json!(10), Some("LOW_STOCK")));
    let history = app.assert_history_explains_product("mug").await;
    assert_eq!(event_types(&history), ["ProductAdded", "LowStockThresholdChanged", "LowStockReached"]);
    assert_eq!(history[2]["payload"], json!({"available": 10}));
}

#[tokio::test]
async fn a_bad_update_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let events = app.count_events().await;
    for (body, label) in [
        (json!({}), "nothing to update"),
        (json!({"name": "  "}), "a blank name"),
        (json!({"lowStockThreshold": -1}), "a negative threshold"),
        (json!({"name": "Mug", "quantity": 3}), "a field a PUT does not take"),
    ] {
        app.put_product("mug", &body, &[]).await.error(StatusCode::UNPROCESSABLE_ENTITY, label);
    }
    let stale = app.put_product("mug", &json!({"name": "Big mug"}), &[("if-match", "\"7\"")]).await;
    stale.error(StatusCode::PRECONDITION_FAILED, "a stale If-Match");
    assert_eq!(app.count_events().await, events, "nothing stored");
    let current = app.put_product("mug", &json!({"name": "Big mug"}), &[("if-match", "\"1\"")]).await;
    assert_eq!(current.data(StatusCode::OK)["name"], "Big mug");
    app.put_product("nothing", &json!({"name": "X"}), &[]).await.error(StatusCode::NOT_FOUND, "unknown product");
}

async fn adjust(app: &TestApp, product_id: &str, quantity: i64, reason: &str) -> Answer {
    let path = format!("/inventory/products/{product_id}/adjustments");
    app.send(Method::POST, &path, &[], Body::Json(json!({"quantity": quantity, "reason": reason}))).await
}

#[tokio::test]
async fn adjustments_correct_the_units_on_hand_and_never_take_reserved_units() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let damaged = adjust(&app, "mug", -3, "DAMAGED").await;
    assert_eq!(damaged.data(StatusCode::OK)["available"], 7);
    let found = adjust(&app, "mug", 2, "FOUND").await;
    assert_eq!(found.data(StatusCode::OK)["available"], 9);

    let events = app.count_events().await;
    let too_many = adjust(&app, "mug", -10, "LOST").await;
    let message = too_many.error(StatusCode::CONFLICT, "more than available");
    assert!(message.contains("9 are available"), "{message}");
    for (body, label) in [
        (json!({"quantity": 0, "reason": "FOUND"}), "zero"),
        (json!({"quantity": 1_000_001, "reason": "FOUND"}), "too many"),
        (json!({"quantity": -1, "reason": "STOLEN"}), "an unknown reason"),
        (json!({"quantity": -1}), "no reason"),
    ] {
        let path = "/inventory/products/mug/adjustments";
        app.send(Method::POST, path, &[], Body::Json(body)).await.error(StatusCode::UNPROCESSABLE_ENTITY, label);
    }
    assert_eq!(app.count_events().await, events, "nothing stored");

    let emptied = adjust(&app, "mug", -9, "COUNT_CORRECTION").await;
    assert_eq!(emptied.data(StatusCode::OK)["stockStatus"], "OUT_OF_STOCK");
    let history = app.assert_history_explains_product("mug").await;
    assert_eq!(
        event_types(&history),
        ["ProductAdded", "StockAdjusted", "StockAdjusted", "StockAdjusted", "OutOfStock"],
        "the alert the new level implies follows"
    );
    assert_eq!(history[1]["payload"], json!({"quantity": -3, "reason": "DAMAGED"}));
    adjust(&app, "nothing", 1, "FOUND").await.error(StatusCode::NOT_FOUND, "unknown product");
}

#[tokio::test]
async fn a_removal_of_units_reserved_for_an_order_is_a_conflict_and_stores_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    app.reserve("mug", domain::OrderId::generate(), 6, 1).await;
    assert_eq!(app.stock("mug").await, (10, 4, 6, 0), "(onHand, available, reserved, shipped)");

    let events = app.count_events().await;
    let before = app.get_product("mug").await.data(StatusCode::OK).clone();
    for (quantity, label) in [(-5, "one reserved unit"), (-10, "every unit on hand"), (-7, "most reserved units")] {
        let refused = adjust(&app, "mug", quantity, "LOST").await;
        let message = refused.error(StatusCode::CONFLICT, label);
        assert!(message.contains("4 are available"), "[{label}] {message}");
    }
    assert_eq!(app.count_events().await, events, "nothing stored");
    assert_eq!(app.get_product("mug").await.data(StatusCode::OK), &before, "the product is as it was");

    // Every unit not promised may go.
    let emptied = adjust(&app, "mug", -4, "DAMAGED").await;
    assert_eq!(stock_of(emptied.data(StatusCode::OK)), (6, 0, 6, 0), "the reserved units stay on hand");
    app.assert_history_explains_product("mug").await;
}
