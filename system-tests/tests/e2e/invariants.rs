//! The invariants of DESIGN.md, checked against a system at rest.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use system_tests::Deployment;

/// Every order of the OMS view, as JSON.
pub async fn all_orders(system: &impl Deployment) -> Vec<Value> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as("SELECT to_jsonb(o) FROM order_view o")
        .fetch_all(system.oms_pool())
        .await
        .expect("reading orders");
    let mut orders = Vec::new();
    for (row,) in rows {
        orders.push(system.api().order(row["order_id"].as_str().expect("order id")).await.expect("GET order"));
    }
    orders
}

/// Waits until no order item is pending (invariant 2), failing after `timeout`.
pub async fn wait_until_resolved(system: &impl Deployment, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM order_view WHERE status = 'PENDING'")
            .fetch_one(system.oms_pool())
            .await
            .expect("counting pending orders");
        if pending == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{pending} orders still PENDING after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Units received per product: initial stock plus restocks, from the event store.
async fn received(system: &impl Deployment) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id,
                sum(CASE event_type WHEN 'ProductAdded' THEN (payload->'ProductAdded'->>'initialStock')::bigint
                                    WHEN 'StockRestocked' THEN (payload->'StockRestocked'->>'quantity')::bigint END)::bigint
           FROM events WHERE aggregate_type = 'Product' AND event_type IN ('ProductAdded', 'StockRestocked')
          GROUP BY aggregate_id",
    )
    .fetch_all(system.inventory_pool())
    .await
    .expect("reading received stock");
    rows.into_iter().collect()
}

/// Checks invariants 1 (no oversell, reserved = executed units of live orders),
/// 2 (every item resolved) and the views against each other, at rest.
pub async fn assert_invariants(system: &impl Deployment) {
    let orders = all_orders(system).await;
    let mut executed_units: HashMap<String, i64> = HashMap::new();
    for order in &orders {
        let canceled = order["status"] == "CANCELED";
        for item in order["orderItems"].as_array().expect("items") {
            assert_ne!(item["status"], "PENDING", "every item resolves: {order}");
            if canceled {
                assert_eq!(item["status"], "CANCELED", "a canceled order has only canceled items: {order}");
            }
            if item["status"] == "EXECUTED" {
                *executed_units.entry(item["productId"].as_str().expect("product").to_owned()).or_default() +=
                    item["quantity"].as_i64().expect("qty");
            }
        }
    }
    let received = received(system).await;
    for (product_id, received) in &received {
        let product = system.api().product(product_id).await.expect("GET product");
        let available = product["available"].as_i64().expect("available");
        let reserved = product["reserved"].as_i64().expect("reserved");
        assert!(available >= 0, "{product_id}: available never negative ({available})");
        assert_eq!(available + reserved, *received, "{product_id}: available + reserved = received");
        assert_eq!(
            reserved,
            executed_units.get(product_id).copied().unwrap_or(0),
            "{product_id}: reserved = executed units of live orders"
        );
    }
    for product_id in executed_units.keys() {
        assert!(received.contains_key(product_id), "an item of unknown product {product_id} was executed");
    }
}
