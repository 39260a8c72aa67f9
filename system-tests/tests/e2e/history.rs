//! Invariants 4 and 5 on a system at rest: folding each order's `/events` gives its
//! `GET`, `asOf` gives it at every version, and rebuilding the read models from the
//! event store gives the same models, order for order and product for product.

use chrono::{DateTime, Utc};
use command_api::orders::Orders;
use command_api::testing::fold_order;
use inventory_saga::products::Products;
use projections::rebuild;
use projections::{OrderViews, ProductViews};
use serde_json::{Value, json};
use system_tests::Deployment;

use crate::invariants::all_orders;

/// The same instant however many digits of the fraction are written.
fn instant(text: &Value) -> Value {
    let time: DateTime<Utc> =
        text.as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("{text} is not a time"));
    json!(time.timestamp_micros())
}

/// An order (as served, or folded from its history) with its times as microseconds.
fn comparable(order: &Value) -> Value {
    let mut order = order.clone();
    for key in ["createdAt", "updatedAt"] {
        order[key] = instant(&order[key]);
    }
    order
}

/// Invariant 5 for every order, and `asOf` at every version of every order.
pub async fn assert_history_explains_every_order(system: &impl Deployment) {
    let api = system.api();
    for order in &all_orders(system).await {
        let id = order["orderId"].as_str().expect("orderId");
        let history = api.order_events(id).await.expect("GET events");
        assert_eq!(
            comparable(&fold_order(id, &history)),
            comparable(order),
            "folding /events gives GET; history: {history:?}"
        );
        let version = order["version"].as_u64().expect("version");
        for at in 1..=version {
            let then = api.order_as_of(id, &at.to_string()).await.expect("GET asOf");
            assert_eq!(comparable(&then), comparable(&fold_order(id, &history[..at as usize])), "order {id} asOf={at}");
        }
    }
}

/// Invariant 4: a fresh fold of each schema's events equals its served model, and a
/// rebuild takes over with the same orders and products.
pub async fn assert_rebuild_is_exact(system: &impl Deployment) {
    let (oms, inventory) = (system.oms_pool(), system.inventory_pool());
    let orders = Orders::new(oms.clone());
    let products = Products::new(inventory.clone());
    let order_differences = rebuild::verify::<OrderViews>(oms, orders.events(), |_| {}).await.expect("verify orders");
    assert!(order_differences.is_empty(), "orders differ from the fold of their events: {order_differences:#?}");
    let product_differences =
        rebuild::verify::<ProductViews>(inventory, products.events(), |_| {}).await.expect("verify products");
    assert!(product_differences.is_empty(), "products differ from the fold of their events: {product_differences:#?}");

    let by_id = |mut orders: Vec<Value>| {
        orders.sort_by(|a, b| a["orderId"].as_str().cmp(&b["orderId"].as_str()));
        orders
    };
    let orders_before = by_id(all_orders(system).await);
    let products_before = system.api().all_products().await.expect("products");
    rebuild::rebuild::<OrderViews>(oms, orders.events(), |_| {}).await.expect("rebuild orders");
    rebuild::rebuild::<ProductViews>(inventory, products.events(), |_| {}).await.expect("rebuild products");
    let orders_after = by_id(all_orders(system).await);
    assert_eq!(orders_after.len(), orders_before.len());
    for (after, before) in orders_after.iter().zip(&orders_before) {
        assert_eq!(after, before, "the rebuilt order view, order for order");
    }
    assert_eq!(
        system.api().all_products().await.expect("products"),
        products_before,
        "the rebuilt product view, product for product"
    );
}
