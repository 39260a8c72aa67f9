//! Order events of two versions through Kafka: an order the previous release placed
//! (its `OrderPlaced` stored as 1.0) is published as stored, and the inventory service
//! reserves and releases for it exactly as for an order placed today (2.0).

use std::time::Duration;

use serde_json::{Value, json};
use system_tests::{System, SystemOptions};

use crate::invariants::assert_invariants;

const RESOLVE: Duration = Duration::from_secs(30);

/// Stores an order of `quantity` mugs as the previous release did: OrderPlaced 1.0,
/// no `idempotencyKey`, no view row (the OMS's feed catch-up builds it).
async fn given_an_order_placed_by_the_previous_release(system: &System, quantity: u32) -> String {
    let order_id = uuid::Uuid::new_v4().to_string();
    let payload = json!({"OrderPlaced": {"userId": "legacy", "items": [{"productId": "mug", "quantity": quantity}]}});
    let metadata = json!({"correlation_id": "legacy", "causation_id": "legacy", "actor": "oms-http", "occurred_at": "2024-05-01T10:00:00.000000Z"});
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Order', $1, 1, 'OrderPlaced', '1.0', $2, $3)",
    )
    .bind(&order_id)
    .bind(payload)
    .bind(metadata)
    .execute(&system.oms_pool)
    .await
    .expect("storing a 1.0 placement");
    order_id
}

/// The order once the view holds it and no item is pending.
async fn resolved(system: &System, order_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + RESOLVE;
    loop {
        // 404 until the OMS's catch-up has built the view.
        if let Ok(order) = system.api.order(order_id).await
            && order["status"] != "PENDING"
        {
            return order;
        }
        assert!(tokio::time::Instant::now() < deadline, "order {order_id} did not resolve within {RESOLVE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn versions(system: &System, order_id: &str) -> Vec<(String, String)> {
    let history = system.api.order_events(order_id).await.expect("the history");
    history
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap_or_default().to_owned(),
                e["eventVersion"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn reserved_mugs(system: &System) -> i64 {
    system.api.product("mug").await.expect("GET mug")["reserved"].as_i64().expect("reserved")
}

#[tokio::test]
async fn an_order_stored_as_order_placed_1_0_is_reserved_and_released_like_one_placed_today() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 0).await.expect("product");
    let legacy = given_an_order_placed_by_the_previous_release(&system, 2).await;
    let today = api.place_order("u-1", &[("mug", 3)]).await.expect("POST")["orderId"].as_str().expect("id").to_owned();

    let legacy_order = resolved(&system, &legacy).await;
    let today_order = resolved(&system, &today).await;
    assert_eq!(
        (legacy_order["status"].as_str(), today_order["status"].as_str()),
        (Some("EXECUTED"), Some("EXECUTED")),
        "{legacy_order} {today_order}"
    );
    assert_eq!(reserved_mugs(&system).await, 5, "the saga reserved for both placements");
    let one = |t: &str, v: &str| (t.to_owned(), v.to_owned());
    assert_eq!(
        versions(&system, &legacy).await,
        [one("OrderPlaced", "1.0"), one("ItemExecuted", "1.0")],
        "history as stored"
    );
    assert_eq!(versions(&system, &today).await, [one("OrderPlaced", "2.0"), one("ItemExecuted", "1.0")]);

    let (status, body) = api.update_order(&legacy, json!({"status": "CANCELED"})).await.expect("PUT");
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + RESOLVE;
    while reserved_mugs(&system).await != 3 {
        assert!(tokio::time::Instant::now() < deadline, "canceling the 1.0 order released its units");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_invariants(&system).await;
    system.stop().await;
}
