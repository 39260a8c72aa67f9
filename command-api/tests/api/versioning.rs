//! Orders the previous release placed, whose `OrderPlaced` is stored as 1.0 (no
//! `idempotencyKey`), are served, changed, canceled and rebuilt like any other; their
//! history shows them as stored. Orders placed now record their key in `OrderPlaced` 2.0.

use std::time::Duration;

use domain::{OrderId, UserId};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, canceled_by_customer, instant, object_keys, order_id, pending, spawn_app};

/// When the previous release placed the order.
const PLACED_AT: &str = "2024-05-01T10:00:00.000000Z";

/// What the previous release stored for an order of 2 mugs by alice.
fn order_placed_1_0() -> Value {
    json!({"OrderPlaced": {"userId": "alice", "items": [{"productId": "mug", "quantity": 2}]}})
}

/// Stores the placement of `order_id` exactly as the previous release did: the
/// event at 1.0, its metadata, no view row (the feed catch-up builds it).
async fn given_an_order_placed_by_the_previous_release(app: &TestApp, order_id: OrderId) {
    let metadata = json!({"correlation_id": "legacy", "causation_id": "legacy-request", "actor": "oms-http", "occurred_at": PLACED_AT});
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Order', $1, 1, 'OrderPlaced', '1.0', $2, $3)",
    )
    .bind(order_id.to_string())
    .bind(order_placed_1_0())
    .bind(metadata)
    .execute(&app.pool)
    .await
    .expect("storing a 1.0 placement");
}

/// `GET` until the view holds the order (the catch-up runs in the background).
async fn served(app: &TestApp, order_id: &str) -> Value {
    for _ in 0..200 {
        let answer = app.get_order(order_id).await;
        if answer.status == StatusCode::OK {
            return answer.data(StatusCode::OK).clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order {order_id}, stored as OrderPlaced 1.0, is never served");
}

/// Runs the `oms` binary's operator command `args` against `app`'s database.
fn oms(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(args)
        .args(["--database-url", &app.database_url, "--database-schema", "oms"])
        .env_remove("DATABASE_URL")
        .output()
        .expect("running oms")
}

async fn stored_placement(app: &TestApp, order_id: &str) -> (String, Value) {
    sqlx::query_as("SELECT event_version, payload FROM events WHERE aggregate_id = $1 AND sequence = 1")
        .bind(order_id)
        .fetch_one(&app.pool)
        .await
        .expect("reading the stored placement")
}

#[tokio::test]
async fn an_order_placed_as_1_0_is_served_changed_and_canceled() {
    let app = spawn_app().await;
    let id = OrderId::generate();
    given_an_order_placed_by_the_previous_release(&app, id).await;
    let id = id.to_string();

    let order = served(&app, &id).await;
    assert_eq!(order["orderItems"], json!([pending("mug", 2)]), "{order}");
    assert_eq!(
        (order["userId"].as_str(), order["status"].as_str(), order["version"].as_u64()),
        (Some("alice"), Some("PENDING"), Some(1)),
        "{order}"
    );
    assert_eq!(
        instant(order["createdAt"].as_str().expect("createdAt")),
        "2024-05-01T10:00:00Z",
        "created when the old release placed it"
    );

    let changed = app
        .put_order(&id, &json!({"orderItems": [{"productId": "tea", "quantity": 3}]}))
        .await
        .data(StatusCode::OK)
        .clone();
    assert_eq!(changed["orderItems"], json!([pending("mug", 2), pending("tea", 3)]), "{changed}");
    assert_eq!(changed["version"], 2);
    let canceled = app.put_order(&id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK).clone();
    assert_eq!(canceled["status"], "CANCELED", "{canceled}");
    assert_eq!(canceled["orderItems"], json!([canceled_by_customer("mug", 2), canceled_by_customer("tea", 3)]));
    assert_eq!(app.get_order(&id).await.data(StatusCode::OK), &canceled, "GET reads the writes");

    let history = app.assert_history_explains_order(&id).await;
    let versions: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e["eventType"].as_str().expect("type"), e["eventVersion"].as_str().expect("version")))
        .collect();
    assert_eq!(
        versions,
        [("OrderPlaced", "1.0"), ("OrderItemsChanged", "1.0"), ("OrderCanceled", "2.0")],
        "history shows each event as stored"
    );
    assert_eq!(history[0]["payload"], order_placed_1_0()["OrderPlaced"], "the 1.0 payload as stored, not upcast");
    assert_eq!(
        stored_placement(&app, &id).await,
        ("1.0".to_owned(), order_placed_1_0()),
        "the stored event is never rewritten"
    );

    let verified = oms(&app, &["rebuild", "--verify"]);
    assert!(verified.status.success(), "a fresh fold of the 1.0 history equals the served order: {verified:?}");
    let rebuilt = oms(&app, &["rebuild"]);
    assert!(rebuilt.status.success(), "the offline rebuild reads the 1.0 placement: {rebuilt:?}");
    assert_eq!(app.get_order(&id).await.data(StatusCode::OK), &canceled, "served from the rebuilt model, unchanged");
}

#[tokio::test]
async fn a_retry_under_the_key_of_an_order_placed_as_1_0_answers_that_order_and_stores_nothing() {
    let app = spawn_app().await;
    // The previous release derived the id from the key as this one does.
    let id = OrderId::for_idempotency_key(&UserId::parse("alice").expect("user"), "checkout-41");
    given_an_order_placed_by_the_previous_release(&app, id).await;
    let order = served(&app, &id.to_string()).await;

    let body = json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]});
    let retry = app.post_order_with(&body, &[("idempotency-key", "checkout-41")]).await;
    assert_eq!(retry.data(StatusCode::CREATED), &order, "the retry answers the order placed before the upgrade");
    let other = json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 3}]});
    let misuse = app.post_order_with(&other, &[("idempotency-key", "checkout-41")]).await;
    let message = misuse.error(StatusCode::UNPROCESSABLE_ENTITY, "the key reused for another body");
    assert!(message.contains("Idempotency-Key was already used"), "{message}");
    assert_eq!(app.count_events().await, 1, "neither stored anything");
}

#[tokio::test]
async fn placing_with_an_idempotency_key_records_it_in_order_placed_2_0() {
    let app = spawn_app().await;
    let body = json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]});
    let with_key =
        app.post_order_with(&body, &[("idempotency-key", "checkout-42")]).await.data(StatusCode::CREATED).clone();
    let without_key = app.post_order(&body).await.data(StatusCode::CREATED).clone();

    for (label, order, key) in
        [("with the header", &with_key, json!("checkout-42")), ("without it", &without_key, Value::Null)]
    {
        let id = order_id(order);
        let (version, payload) = stored_placement(&app, &id).await;
        assert_eq!(version, "2.0", "[{label}] placed now, stored as 2.0");
        assert_eq!(
            payload["OrderPlaced"]["idempotencyKey"], key,
            "[{label}] the stored event records the key: {payload}"
        );
        let history = app.assert_history_explains_order(&id).await;
        assert_eq!(
            (history[0]["eventVersion"].as_str(), &history[0]["payload"]["idempotencyKey"]),
            (Some("2.0"), &key),
            "[{label}] {history:?}"
        );
        assert_eq!(
            object_keys(order),
            ["createdAt", "orderId", "orderItems", "status", "updatedAt", "userId", "version"],
            "[{label}] the order itself does not show the key: the HTTP contract is unchanged"
        );
    }
}
