//! `GET /oms/orders/{id}?asOf=`: the order as it was, folded from its events, at every
//! version and at the time of every event.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Answer, Body, TestApp, fold_order, order_id, spawn_app};

async fn get(app: &TestApp, path: &str) -> Answer {
    app.send(reqwest::Method::GET, path, &[], Body::None).await
}

#[tokio::test]
async fn as_of_every_version_and_every_event_time_is_the_fold_of_the_history_so_far() {
    let app = spawn_app().await;
    let placed = app.post_order(&json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]})).await;
    let id = order_id(placed.data(StatusCode::CREATED));
    for change in [
        json!({"orderItems": [{"productId": "mug", "quantity": 3}, {"productId": "tea", "quantity": 1}]}),
        json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]}),
        json!({"status": "CANCELED"}),
    ] {
        app.put_order(&id, &change).await.data(StatusCode::OK);
    }
    let history = app.assert_history_explains_order(&id).await;
    assert_eq!(history.len(), 4);
    for version in 1..=history.len() {
        let then = get(&app, &format!("/oms/orders/{id}?asOf={version}")).await.data(StatusCode::OK).clone();
        let expected = fold_order(&id, &history[..version]);
        assert_eq!(
            (then["version"].clone(), then["status"].clone(), then["orderItems"].clone()),
            (expected["version"].clone(), expected["status"].clone(), expected["orderItems"].clone()),
            "asOf={version}"
        );
        let at = history[version - 1]["recordedAt"].as_str().expect("recordedAt");
        let by_time = get(&app, &format!("/oms/orders/{id}?asOf={}", urlencode(at))).await.data(StatusCode::OK).clone();
        assert_eq!(by_time, then, "asOf the recording time of event {version} is the order right after it");
    }
    let now = app.get_order(&id).await.data(StatusCode::OK).clone();
    assert_eq!(
        get(&app, &format!("/oms/orders/{id}?asOf=4")).await.data(StatusCode::OK),
        &now,
        "the last version is the order now"
    );
}

#[tokio::test]
async fn as_of_before_the_order_or_beyond_its_versions_is_404_and_a_bad_as_of_is_422() {
    let app = spawn_app().await;
    let placed = app.post_order(&json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]})).await;
    let id = order_id(placed.data(StatusCode::CREATED));
    get(&app, &format!("/oms/orders/{id}?asOf=2")).await.error(StatusCode::NOT_FOUND, "a version the order never had");
    get(&app, &format!("/oms/orders/{id}?asOf=2000-01-01T00:00:00Z"))
        .await
        .error(StatusCode::NOT_FOUND, "before the order existed");
    for (bad, expected) in [("0", "versions start at 1"), ("yesterday", "give a version"), ("-3", "give a version")] {
        let answer = get(&app, &format!("/oms/orders/{id}?asOf={bad}")).await;
        let message = answer.error(StatusCode::UNPROCESSABLE_ENTITY, bad);
        assert!(message.contains("asOf") && message.contains(expected), "asOf={bad}: {message}");
    }
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
