//! Client concurrency control: `GET` answers `ETag: "<version>"`, a `PUT` with
//! `If-Match` applies only while the order is still at that version, and a stale one
//! is 412 in the envelope with nothing stored.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{order_id, spawn_app};

#[tokio::test]
async fn reads_and_writes_carry_the_version_as_etag() {
    let app = spawn_app().await;
    let placed = app.post_order(&json!({"userId": "u-1", "orderItems": [{"productId": "mug", "quantity": 1}]})).await;
    assert_eq!(placed.header("etag"), Some("\"1\""), "a placed order is version 1");
    let id = order_id(placed.data(StatusCode::CREATED));
    let read = app.get_order(&id).await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    let changed = app.put_order(&id, &json!({"orderItems": [{"productId": "mug", "quantity": 2}]})).await;
    assert_eq!(changed.data(StatusCode::OK)["version"], 2);
    assert_eq!(changed.header("etag"), Some("\"2\""), "the write answers the new version");
}

#[tokio::test]
async fn a_write_with_a_stale_if_match_is_412_and_stores_nothing() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("u-1", &[("mug", 1)]).await);
    let change = |quantity: u32| json!({"orderItems": [{"productId": "mug", "quantity": quantity}]});

    // Two clients read version 1; the first to write wins.
    let first = app.put_order_with(&id, &change(2), &[("if-match", "\"1\"")]).await;
    assert_eq!(first.data(StatusCode::OK)["orderItems"][0]["quantity"], 2);
    let events = app.count_events().await;
    let second = app.put_order_with(&id, &change(5), &[("if-match", "\"1\"")]).await;
    let message = second.error(StatusCode::PRECONDITION_FAILED, "stale If-Match");
    assert!(message.contains("version 2"), "{message}");
    assert_eq!(app.count_events().await, events, "nothing stored");
    let order = app.get_order(&id).await;
    assert_eq!(order.data(StatusCode::OK)["orderItems"][0]["quantity"], 2, "the first write stands");

    // A status change is a write too; a refused rule still answers as before when the
    // version holds.
    let stale_cancel = app.put_order_with(&id, &json!({"status": "CANCELED"}), &[("if-match", "\"1\"")]).await;
    stale_cancel.error(StatusCode::PRECONDITION_FAILED, "stale cancel");
    let refused = app.put_order_with(&id, &json!({"status": "SHIPPED"}), &[("if-match", "\"2\"")]).await;
    refused.error(StatusCode::CONFLICT, "a transition the state forbids, at the current version");
    // A body that asks for nothing is refused as such whatever the version: the
    // precondition is about what is stored, the body's shape is not.
    for empty in [json!({"orderItems": null}), json!({"orderItems": []}), json!({})] {
        let answer = app.put_order_with(&id, &empty, &[("if-match", "\"1\"")]).await;
        let message = answer.error(StatusCode::UNPROCESSABLE_ENTITY, &empty.to_string());
        assert!(message.contains("nothing to update"), "{message}");
    }
    assert_eq!(app.count_events().await, events, "still nothing stored");
}

#[tokio::test]
async fn if_match_takes_lists_and_star_and_refuses_what_is_not_an_entity_tag() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("u-1", &[("mug", 1)]).await);
    let change = |quantity: u32| json!({"orderItems": [{"productId": "mug", "quantity": quantity}]});

    let listed = app.put_order_with(&id, &change(2), &[("if-match", "\"7\", \"1\"")]).await;
    assert_eq!(listed.data(StatusCode::OK)["version"], 2, "one tag of the list matches");
    let any = app.put_order_with(&id, &change(3), &[("if-match", "*")]).await;
    assert_eq!(any.data(StatusCode::OK)["version"], 3, "* asks only that the order exists");
    let weak = app.put_order_with(&id, &change(4), &[("if-match", "W/\"3\"")]).await;
    weak.error(StatusCode::PRECONDITION_FAILED, "a weak tag never matches a write");
    let events = app.count_events().await;
    for malformed in ["3", "\"3", "v3"] {
        let answer = app.put_order_with(&id, &change(4), &[("if-match", malformed)]).await;
        let message = answer.error(StatusCode::BAD_REQUEST, malformed);
        assert!(message.contains("If-Match"), "{message}");
    }
    assert_eq!(app.count_events().await, events, "nothing stored");

    let missing = "00000000-0000-4000-8000-000000000000";
    let unknown = app.put_order_with(missing, &change(1), &[("if-match", "\"1\"")]).await;
    unknown.error(StatusCode::NOT_FOUND, "If-Match on an order that does not exist");
}
