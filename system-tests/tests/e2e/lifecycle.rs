//! The order's life after the saga, through both services and the broker: shipping
//! consumes reservations, the payment deadline cancels unpaid orders and releases
//! their stock (after a killed OMS comes back, and once with two instances), and
//! adjustments mix with both, invariant 1 holding throughout.

use std::time::Duration;

use serde_json::{Value, json};
use system_tests::{ProcessSystem, Service, System, SystemOptions};

use crate::invariants::{assert_invariants, wait_until_resolved};
use crate::scenarios::wait_for;

const RESOLVE: Duration = Duration::from_secs(30);

/// `(available, reserved, onHand, shipped)` of a product as `GET` shows it.
pub(crate) fn stock(product: &Value) -> (i64, i64, i64, i64) {
    let count = |field: &str| product[field].as_i64().unwrap_or_else(|| panic!("{field} of {product}"));
    (count("available"), count("reserved"), count("onHand"), count("shipped"))
}

async fn move_to(system: &System, order_id: &str, statuses: &[&str]) {
    for status in statuses {
        move_to_api(&system.api, order_id, status).await;
    }
}

#[tokio::test]
async fn shipping_an_order_consumes_its_reserved_units_and_delivery_changes_no_stock() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 2).await.expect("mug");
    let order = api.place_order("u-1", &[("mug", 3), ("ghost", 1)]).await.expect("POST");
    let id = order["orderId"].as_str().expect("id").to_owned();
    let order = api.resolved_order(&id, RESOLVE).await.expect("resolved");
    assert_eq!(order["status"], "PARTIALLY_EXECUTED", "{order}");
    assert_eq!(stock(&api.product("mug").await.expect("mug")), (7, 3, 10, 0));

    move_to(&system, &id, &["PAID", "SHIPPED"]).await;
    wait_for(|| async { stock(&api.product("mug").await.expect("mug")) == (7, 0, 7, 3) }).await;
    let history = system.api.product_events("mug").await.expect("history");
    let shipped: Vec<&Value> = history.iter().filter(|e| e["eventType"] == "StockShipped").collect();
    assert_eq!(shipped.len(), 1, "one shipment: {history:?}");
    assert_eq!(shipped[0]["payload"], json!({"orderId": id, "quantity": 3, "revision": 5}));

    move_to(&system, &id, &["DELIVERED"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stock(&api.product("mug").await.expect("mug")), (7, 0, 7, 3), "delivery changes no stock");
    assert_invariants(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn an_order_not_paid_in_time_is_canceled_and_its_stock_released() {
    let options = SystemOptions { oms_flags: vec!["--payment-timeout-ms=1500".into()], ..SystemOptions::default() };
    let system = System::start(options).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 0).await.expect("mug");
    let unpaid = api.place_order("u-1", &[("mug", 4)]).await.expect("POST")["orderId"].as_str().expect("id").to_owned();
    let paid = api.place_order("u-2", &[("mug", 1)]).await.expect("POST")["orderId"].as_str().expect("id").to_owned();
    api.resolved_order(&unpaid, RESOLVE).await.expect("resolved");
    api.resolved_order(&paid, RESOLVE).await.expect("resolved");
    move_to(&system, &paid, &["PAID"]).await;
    assert_eq!(stock(&api.product("mug").await.expect("mug")).1, 5, "both hold their units");

    wait_for(|| async { api.order(&unpaid).await.expect("GET")["status"] == "CANCELED" }).await;
    let order = api.order(&unpaid).await.expect("GET");
    assert_eq!(order["orderItems"][0]["reason"], "PAYMENT_TIMEOUT", "{order}");
    wait_for(|| async { stock(&api.product("mug").await.expect("mug")) == (9, 1, 10, 0) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.order(&paid).await.expect("GET")["status"], "PAID", "a paid order is never canceled");
    let (code, body) = api.update_order(&unpaid, json!({"status": "PAID"})).await.expect("PUT");
    assert_eq!(code, 409, "paying after the deadline: {body}");
    assert_invariants(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn shipments_expiries_cancellations_and_adjustments_together_keep_the_stock_exact() {
    let options = SystemOptions { oms_flags: vec!["--payment-timeout-ms=3000".into()], ..SystemOptions::default() };
    let system = System::start(options).await.expect("system");
    let api = &system.api;
    for (product, stock) in [("mug", 40), ("tea", 12), ("spoon", 25)] {
        api.add_product(product, stock, 3).await.expect("product");
    }
    let mut orders = Vec::new();
    for i in 0..24u32 {
        let lines: Vec<(&str, u32)> = match i % 4 {
            0 => vec![("mug", 1 + i % 3), ("tea", 1)],
            1 => vec![("spoon", 2), ("tea", 2)],
            2 => vec![("mug", 2), ("spoon", 1), ("ghost", 1)],
            _ => vec![("tea", 1 + i % 2)],
        };
        let order = api.place_order(&format!("u-{}", i % 5), &lines).await.expect("POST");
        orders.push(order["orderId"].as_str().expect("id").to_owned());
        if i % 6 == 5 {
            // Stock counted while orders flow: found units, damaged units.
            api.adjust("spoon", 3, "FOUND").await.expect("found");
            api.adjust("mug", -1, "DAMAGED").await.expect("damaged");
        }
    }
    wait_until_resolved(&system, RESOLVE).await;
    for (n, id) in orders.iter().enumerate() {
        let status = api.order(id).await.expect("GET")["status"].as_str().expect("status").to_owned();
        if status == "CANCELED" {
            continue;
        }
        // A third shipped (some delivered), a third canceled by the customer, the rest
        // left unpaid for the deadline.
        match n % 3 {
            0 if n % 2 == 0 => move_to(&system, id, &["PAID", "SHIPPED", "DELIVERED"]).await,
            0 => move_to(&system, id, &["PAID", "SHIPPED"]).await,
            1 => move_to(&system, id, &["CANCELED"]).await,
            _ => {}
        }
    }
    api.adjust("tea", 2, "COUNT_CORRECTION").await.expect("counted");
    wait_for(|| async {
        let awaiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM order_view WHERE status IN ('EXECUTED', 'PARTIALLY_EXECUTED')")
                .fetch_one(&system.oms_pool)
                .await
                .expect("counting");
        awaiting == 0
    })
    .await;
    let reasons: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'OrderCanceled' AND payload->'OrderCanceled'->>'reason' = 'PAYMENT_TIMEOUT'",
    )
    .fetch_one(&system.oms_pool)
    .await
    .expect("counting");
    assert!(reasons > 0, "some orders expired");
    assert_invariants(&system).await;
    let mut shipped = 0;
    for product in ["mug", "tea", "spoon"] {
        shipped += stock(&api.product(product).await.expect("product")).3;
    }
    assert!(shipped > 0, "units were shipped");
    system.stop().await;
}

/// Counts each order's cancellations for `PAYMENT_TIMEOUT`, from the OMS's store.
async fn expiries(pool: &sqlx::PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT aggregate_id, count(*) FROM events
          WHERE event_type = 'OrderCanceled' AND payload->'OrderCanceled'->>'reason' = 'PAYMENT_TIMEOUT'
          GROUP BY aggregate_id ORDER BY aggregate_id",
    )
    .fetch_all(pool)
    .await
    .expect("counting expiries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_payment_deadline_fires_after_the_oms_was_killed_and_once_with_two_instances() {
    // Long enough for ten orders to be placed, resolved and half of them paid while a
    // second instance joins the consumer group (a rebalance), on a loaded machine.
    const DEADLINE: Duration = Duration::from_secs(6);
    let deadline_ms = DEADLINE.as_millis().to_string();
    let mut system =
        ProcessSystem::start(3, &[("ORDER_PAYMENT_TIMEOUT_MS", deadline_ms.as_str())]).await.expect("processes");
    eprintln!("service logs in {}", system.log_dir.display());
    let api = system.api.clone();
    api.add_product("mug", 100, 0).await.expect("mug");
    let place = |n: usize| {
        let api = api.clone();
        async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let order = api.place_order(&format!("u-{i}"), &[("mug", 1)]).await.expect("POST");
                ids.push(order["orderId"].as_str().expect("id").to_owned());
            }
            for id in &ids {
                api.resolved_order(id, RESOLVE).await.expect("resolved");
            }
            ids
        }
    };

    // Resolved, then the only OMS is killed before the deadline and comes back after.
    let first = place(4).await;
    system.oms.kill();
    tokio::time::sleep(DEADLINE + Duration::from_secs(1)).await;
    system.oms.start().expect("restarting the OMS");
    system.oms.wait_ready(&api.http, Duration::from_secs(30)).await.expect("OMS ready again");
    for id in &first {
        wait_for(|| async { api.order(id).await.expect("GET")["status"] == "CANCELED" }).await;
    }

    // Two instances polling the same orders: each order expires once; paid ones never.
    let mut second = system.start_instance(Service::Oms).expect("a second OMS");
    second.wait_ready(&api.http, Duration::from_secs(30)).await.expect("second OMS ready");
    let more = place(10).await;
    for id in more.iter().step_by(2) {
        move_to_api(&api, id, "PAID").await;
    }
    for id in more.iter().skip(1).step_by(2) {
        wait_for(|| async { api.order(id).await.expect("GET")["status"] == "CANCELED" }).await;
    }
    tokio::time::sleep(DEADLINE).await;
    for id in more.iter().step_by(2) {
        assert_eq!(api.order(id).await.expect("GET")["status"], "PAID", "a paid order never expires");
    }
    let counted = expiries(&system.oms_pool).await;
    assert_eq!(counted.len(), first.len() + more.len() / 2, "every unpaid order expired: {counted:?}");
    assert!(counted.iter().all(|(_, n)| *n == 1), "each once: {counted:?}");
    assert_invariants(&system).await;
    second.kill();
}

async fn move_to_api(api: &system_tests::Api, order_id: &str, status: &str) {
    let (code, body) = api.update_order(order_id, json!({"status": status})).await.expect("PUT");
    assert_eq!(code, 200, "{status}: {body}");
}
