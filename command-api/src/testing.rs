//! Test support (feature `test-support`), for the OMS's API suite and the end-to-end
//! tests: what an order is after its history, computed from the `/events` payloads
//! alone, not with the service's code, so that a test compares the service with an
//! independent reading of DESIGN.md.

use serde_json::{Value, json};

/// The order after `history` (its `/events`, oldest first), following DESIGN.md. Its
/// `createdAt` and `updatedAt` are the `occurredAt` of its first and last events, as
/// written there: compare them with the order's as instants.
pub fn fold_order(order_id: &str, history: &[Value]) -> Value {
    let mut order = Value::Null;
    // Open while items resolve; then what the client (or the deadline) moved it to.
    let mut stage = "OPEN".to_owned();
    for event in history {
        let payload = &event["payload"];
        let occurred_at = event["occurredAt"].as_str().expect("occurredAt is a string");
        match event["eventType"].as_str().expect("eventType is a string") {
            "OrderPlaced" => {
                let items: Vec<Value> = payload["items"]
                    .as_array()
                    .expect("OrderPlaced has items")
                    .iter()
                    .map(|line| json!({"productId": line["productId"], "quantity": line["quantity"], "status": "PENDING", "reason": null}))
                    .collect();
                order = json!({"orderId": order_id, "userId": payload["userId"], "status": "PENDING", "orderItems": items, "createdAt": occurred_at});
            }
            "OrderItemsChanged" => {
                for change in payload["items"].as_array().expect("OrderItemsChanged has items") {
                    let reason =
                        if change["status"] == "CANCELED" { json!("CANCELED_BY_CUSTOMER") } else { Value::Null };
                    let item = json!({"productId": change["productId"], "quantity": change["quantity"], "status": change["status"], "reason": reason});
                    let items = order["orderItems"].as_array_mut().expect("items");
                    match items.iter_mut().find(|i| i["productId"] == change["productId"]) {
                        Some(existing) => *existing = item,
                        None => items.push(item),
                    }
                }
            }
            "ItemExecuted" => set_item(&mut order, &payload["productId"], "EXECUTED", Value::Null),
            "ItemRejected" => set_item(&mut order, &payload["productId"], "CANCELED", payload["reason"].clone()),
            "OrderStatusChanged" => stage = payload["status"].as_str().expect("status is a string").to_owned(),
            "OrderCanceled" => {
                stage = "CANCELED".to_owned();
                for item in order["orderItems"].as_array_mut().expect("items") {
                    if item["status"] != "CANCELED" {
                        item["status"] = json!("CANCELED");
                        item["reason"] = payload["reason"].clone();
                    }
                }
            }
            other => panic!("unknown order event {other}: {event}"),
        }
        order["status"] =
            if stage == "OPEN" { json!(status_of_open_order(&order["orderItems"])) } else { json!(stage) };
        order["updatedAt"] = json!(occurred_at);
        order["version"] = event["sequence"].clone();
    }
    order
}

/// Sets the status and reason of the order's item of `product`.
fn set_item(order: &mut Value, product: &Value, status: &str, reason: Value) {
    let items = order["orderItems"].as_array_mut().expect("items");
    if let Some(item) = items.iter_mut().find(|i| i["productId"] == *product) {
        item["status"] = json!(status);
        item["reason"] = reason;
    }
}

/// PENDING while any item is; then EXECUTED, PARTIALLY_EXECUTED or CANCELED.
fn status_of_open_order(items: &Value) -> &'static str {
    let items = items.as_array().expect("items");
    let executed = items.iter().filter(|i| i["status"] == "EXECUTED").count();
    if items.iter().any(|i| i["status"] == "PENDING") {
        "PENDING"
    } else if executed == 0 {
        "CANCELED"
    } else if executed == items.len() {
        "EXECUTED"
    } else {
        "PARTIALLY_EXECUTED"
    }
}
