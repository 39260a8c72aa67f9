//! Client concurrency control on products: `GET` answers `ETag: "<version>"`, a
//! restock or an adjustment with `If-Match` applies only while the product is still at
//! that version, and a stale one is 412 with nothing stored.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Answer, Body, TestApp, spawn_app};

#[tokio::test]
async fn a_restock_with_a_stale_if_match_is_412_and_stores_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let read = app.get_product("mug").await;
    assert_eq!(read.header("etag"), Some("\"1\""));

    let first = app.restock_with("mug", 5, &[("if-match", "\"1\"")]).await;
    assert_eq!(first.data(StatusCode::OK)["available"], 15);
    assert_eq!(first.header("etag"), Some("\"2\""), "the write answers the new version");
    let events = app.count_events().await;
    let second = app.restock_with("mug", 5, &[("if-match", "\"1\"")]).await;
    let message = second.error(StatusCode::PRECONDITION_FAILED, "stale If-Match");
    assert!(message.contains("version 2"), "{message}");
    assert_eq!(app.count_events().await, events, "nothing stored");
    assert_eq!(app.get_product("mug").await.data(StatusCode::OK)["available"], 15, "the first restock stands");

    let current = app.restock_with("mug", 5, &[("if-match", "\"2\"")]).await;
    assert_eq!(current.data(StatusCode::OK)["available"], 20);
    let malformed = app.restock_with("mug", 5, &[("if-match", "2")]).await;
    malformed.error(StatusCode::BAD_REQUEST, "not an entity tag");
    let unknown = app.restock_with("no-such-product", 5, &[("if-match", "\"1\"")]).await;
    unknown.error(StatusCode::NOT_FOUND, "If-Match on a product that does not exist");
}

async fn adjust_if_match(app: &TestApp, quantity: i64, if_match: &str) -> Answer {
    let body = Body::Json(json!({"quantity": quantity, "reason": "DAMAGED"}));
    app.send(Method::POST, "/inventory/products/mug/adjustments", &[("if-match", if_match)], body).await
}

#[tokio::test]
async fn an_adjustment_with_a_stale_if_match_is_412_and_stores_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let first = adjust_if_match(&app, -1, "\"1\"").await;
    assert_eq!(first.data(StatusCode::OK)["onHand"], 9);
    assert_eq!(first.header("etag"), Some("\"2\""), "the write answers the new version");

    // Another writer moves the product on; the first client's tag is now stale.
    app.restock("mug", 5).await.data(StatusCode::OK);
    let events = app.count_events().await;
    let before = app.get_product("mug").await.data(StatusCode::OK).clone();
    for (if_match, label) in [("\"2\"", "the version before the restock"), ("\"1\"", "an older one")] {
        let stale = adjust_if_match(&app, -1, if_match).await;
        let message = stale.error(StatusCode::PRECONDITION_FAILED, label);
        assert!(message.contains("version 3"), "[{label}] {message}");
    }
    assert_eq!(app.count_events().await, events, "nothing stored");
    assert_eq!(app.get_product("mug").await.data(StatusCode::OK), &before, "the product is as it was");

    let current = adjust_if_match(&app, -1, "\"3\", \"7\"").await;
    assert_eq!(current.data(StatusCode::OK)["onHand"], 13, "one tag of the list matches");
    assert_eq!(current.header("etag"), Some("\"4\""));
}
