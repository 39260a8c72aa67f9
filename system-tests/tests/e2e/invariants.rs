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

/// Per product, from the inventory's event store: units received (initial stock plus
/// restocks) and the sum of adjustments.
async fn stock_movements(system: &impl Deployment) -> HashMap<String, (i64, i64)> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT aggregate_id,
                coalesce(sum(CASE event_type WHEN 'ProductAdded' THEN (payload->'ProductAdded'->>'initialStock')::bigint
                                             WHEN 'StockRestocked' THEN (payload->'StockRestocked'->>'quantity')::bigint END), 0)::bigint,
                coalesce(sum((payload->'StockAdjusted'->>'quantity')::bigint), 0)::bigint
           FROM events WHERE aggregate_type = 'Product' AND event_type IN ('ProductAdded', 'StockRestocked', 'StockAdjusted')
          GROUP BY aggregate_id",
    )
    .fetch_all(system.inventory_pool())
    .await
    .expect("reading received stock");
    rows.into_iter().map(|(product, received, adjusted)| (product, (received, adjusted))).collect()
}

/// How long the inventory service may take to act on the last order events (a
/// shipment, a cancellation) once every item has resolved.
const SETTLE: Duration = Duration::from_secs(30);

/// Checks invariants 1 (no oversell; available + reserved = onHand = received +
/// adjustments − shipped; reserved = executed units of orders neither canceled nor
/// shipped; shipped = executed units of shipped or delivered orders) and 2 (every item
/// resolved), the views against each other, at rest: the stock side is given
/// [`SETTLE`] to act on the last order events before a difference fails.
pub async fn assert_invariants(system: &impl Deployment) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let violations = invariant_violations(system).await;
        if violations.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "invariants broken after {SETTLE:?}: {violations:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn invariant_violations(system: &impl Deployment) -> Vec<String> {
    let orders = all_orders(system).await;
    let mut held: HashMap<String, i64> = HashMap::new();
    let mut shipped: HashMap<String, i64> = HashMap::new();
    let mut violations = Vec::new();
    for order in &orders {
        let canceled = order["status"] == "CANCELED";
        let gone = order["status"] == "SHIPPED" || order["status"] == "DELIVERED";
        for item in order["orderItems"].as_array().expect("items") {
            assert_ne!(item["status"], "PENDING", "every item resolves: {order}");
            if canceled {
                assert_eq!(item["status"], "CANCELED", "a canceled order has only canceled items: {order}");
            }
            if item["status"] == "EXECUTED" {
                let units = if gone { &mut shipped } else { &mut held };
                *units.entry(item["productId"].as_str().expect("product").to_owned()).or_default() +=
                    item["quantity"].as_i64().expect("qty");
            }
        }
    }
    let movements = stock_movements(system).await;
    for (product_id, (received, adjusted)) in &movements {
        let product = system.api().product(product_id).await.expect("GET product");
        let count = |field: &str| product[field].as_i64().unwrap_or_else(|| panic!("{field} of {product}"));
        let (available, reserved, on_hand, shipped_units) =
            (count("available"), count("reserved"), count("onHand"), count("shipped"));
        let mut check = |holds: bool, what: String| {
            if !holds {
                violations.push(format!("{product_id}: {what} ({product})"));
            }
        };
        check(available >= 0, "available is never negative".into());
        check(available + reserved == on_hand, "available + reserved = onHand".into());
        check(
            on_hand == received + adjusted - shipped_units,
            format!("onHand = received {received} + adjustments {adjusted} - shipped"),
        );
        let expected_held = held.get(product_id).copied().unwrap_or(0);
        check(reserved == expected_held, format!("reserved = {expected_held} executed units of live orders"));
        let expected_shipped = shipped.get(product_id).copied().unwrap_or(0);
        check(shipped_units == expected_shipped, format!("shipped = {expected_shipped} units of shipped orders"));
    }
    for product_id in held.keys().chain(shipped.keys()) {
        assert!(movements.contains_key(product_id), "an item of unknown product {product_id} was executed");
    }
    violations
}
