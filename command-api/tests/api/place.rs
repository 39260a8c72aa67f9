//! `POST /oms/orders`, `GET /oms/orders/{id}`, the envelope, ids and probes.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Body, object_keys, order_id, pending, spawn_app};

#[tokio::test]
async fn placing_an_order_answers_201_with_every_item_pending_at_version_1() {
    let app = spawn_app().await;

    let answer = app
        .post_order(&json!({"userId": "alice", "orderItems": [
            {"productId": "mug", "quantity": 2},
            {"productId": "tea-earl.grey:250g", "quantity": 1}
        ]}))
        .await;

    let order = answer.data(StatusCode::CREATED);
    assert_eq!(
        object_keys(order),
        ["createdAt", "orderId", "orderItems", "status", "updatedAt", "userId", "version"],
        "an order has exactly the camelCase fields of the contract"
    );
    let id = order_id(order);
    let uuid = uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("orderId {id} is not a UUID: {e}"));
    assert_eq!(id, uuid.hyphenated().to_string(), "the orderId is a lowercase hyphenated UUID");
    assert_eq!(order["userId"], "alice");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["version"], 1);
    assert_eq!(order["orderItems"], json!([pending("mug", 2), pending("tea-earl.grey:250g", 1)]));
    assert_eq!(order["createdAt"], order["updatedAt"], "a new order was last updated when it was created");
    assert_eq!(app.count_events().await, 1, "placing an order records one event");
}

#[tokio::test]
async fn every_placement_gets_a_new_order_id() {
    let app = spawn_app().await;
    let first = app.place_order("alice", &[("mug", 1)]).await;
    let second = app.place_order("alice", &[("mug", 1)]).await;
    assert_ne!(order_id(&first), order_id(&second), "without an Idempotency-Key the same body is a second order");
    assert_eq!(app.count_events().await, 2);
}

#[tokio::test]
async fn a_placed_order_reads_back_exactly_as_placed() {
    let app = spawn_app().await;
    let placed = app.place_order("bob", &[("mug", 3), ("plate", 4)]).await;

    let read = app.get_order(&order_id(&placed)).await;

    assert_eq!(read.data(StatusCode::OK), &placed, "GET right after POST returns what POST returned");
    app.assert_history_explains_order(&order_id(&placed)).await;
}

#[tokio::test]
async fn an_unknown_order_is_404_in_the_envelope_for_every_route() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::new_v4().to_string();

    let read = app.get_order(&unknown).await;
    let message = read.error(StatusCode::NOT_FOUND, "GET unknown order");
    assert!(message.contains("not found"), "GET unknown order: {message}");

    let history = app.events(&unknown).await;
    let message = history.error(StatusCode::NOT_FOUND, "GET unknown order's events");
    assert!(message.contains("not found"), "GET unknown order's events: {message}");

    let update = app.put_order(&unknown, &json!({"status": "CANCELED"})).await;
    let message = update.error(StatusCode::NOT_FOUND, "PUT unknown order");
    assert!(message.contains("not found"), "PUT unknown order: {message}");

    assert_eq!(app.count_events().await, 0, "a PUT on an unknown order creates nothing");
}

#[tokio::test]
async fn the_request_id_is_echoed_and_generated_when_absent() {
    let app = spawn_app().await;

    let answer = app.send(Method::GET, "/health/live", &[("x-request-id", "req-echo-1")], Body::None).await;
    assert_eq!(answer.header("x-request-id"), Some("req-echo-1"), "a client's request id is echoed");

    let failed = app.get_order("not-a-uuid").await;
    failed.error(StatusCode::NOT_FOUND, "non-UUID id");
    let generated = failed.header("x-request-id").expect("a request id is generated when the client sends none");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "a generated request id is a UUID, got {generated}");

    let placed = app
        .post_order_with(
            &json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 1}]}),
            &[("x-request-id", "req-echo-2")],
        )
        .await;
    placed.data(StatusCode::CREATED);
    assert_eq!(placed.header("x-request-id"), Some("req-echo-2"), "commands echo the request id too");
}

#[tokio::test]
async fn liveness_is_200_and_readiness_names_the_broker_when_it_is_down() {
    // Test apps point at a port where no broker listens; the database is theirs.
    let app = spawn_app().await;
    let live = app.send(Method::GET, "/health/live", &[], Body::None).await;
    assert_eq!(live.data(StatusCode::OK)["status"], "live");
    let ready = app.send(Method::GET, "/health/ready", &[], Body::None).await;
    let message = ready.error(StatusCode::SERVICE_UNAVAILABLE, "broker down");
    assert_eq!(message, "not ready: broker is down (database and pipeline are up)");
}

#[tokio::test]
async fn an_order_id_is_found_whatever_the_case_of_its_hex_digits() {
    let app = spawn_app().await;
    let placed = app.place_order("alice", &[("mug", 1)]).await;

    let read = app.get_order(&order_id(&placed).to_uppercase()).await;

    assert_eq!(read.data(StatusCode::OK), &placed, "a UUID names the same order in upper case");
}

/// The id a client reads back in `x-request-id` is how it finds its request in the
/// audit history (`causationId`) and in the logs (`request.id`).
#[tokio::test]
async fn the_request_id_echoed_is_the_one_the_events_record() {
    let app = spawn_app().await;
    for (label, request_id) in [("with a space", "checkout 42".to_owned()), ("200 characters", "r".repeat(200))] {
        let answer = app
            .post_order_with(
                &json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 1}]}),
                &[("x-request-id", &request_id)],
            )
            .await;
        let id = order_id(answer.data(StatusCode::CREATED));
        let echoed = answer.header("x-request-id").expect("x-request-id is echoed").to_owned();
        let history = app.events(&id).await.data(StatusCode::OK).clone();
        assert_eq!(
            history[0]["causationId"].as_str(),
            Some(echoed.as_str()),
            "[{label}] the echoed request id is the recorded cause"
        );
    }
}
