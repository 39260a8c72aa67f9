//! One order at a time through HTTP and Kafka: every outcome DESIGN.md names.

use std::time::Duration;

use serde_json::json;
use system_tests::{System, SystemOptions};

use crate::invariants::assert_invariants;

const RESOLVE: Duration = Duration::from_secs(30);

fn item<'a>(order: &'a serde_json::Value, product_id: &str) -> &'a serde_json::Value {
    order["orderItems"].as_array().expect("items").iter().find(|i| i["productId"] == product_id).expect("item present")
}

#[tokio::test]
async fn an_order_whose_items_are_all_in_stock_is_executed_and_reserves_the_units() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 2).await.unwrap();
    api.add_product("tea", 5, 0).await.unwrap();
    let order = api.place_order("u-1", &[("mug", 3), ("tea", 5)]).await.unwrap();
    let order = api.resolved_order(order["orderId"].as_str().unwrap(), RESOLVE).await.unwrap();
    assert_eq!(order["status"], "EXECUTED", "{order}");
    assert_eq!(item(&order, "mug")["status"], "EXECUTED");
    let mug = api.product("mug").await.unwrap();
    assert_eq!((mug["available"].as_i64(), mug["reserved"].as_i64()), (Some(7), Some(3)));
    let tea = api.product("tea").await.unwrap();
    assert_eq!((tea["available"].as_i64(), tea["stockStatus"].as_str()), (Some(0), Some("OUT_OF_STOCK")));
    assert_invariants(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn insufficient_stock_and_unknown_products_cancel_their_items_only() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 0).await.unwrap();
    api.add_product("rare", 1, 0).await.unwrap();
    let partial = api.place_order("u-1", &[("mug", 2), ("rare", 2), ("ghost", 1)]).await.unwrap();
    let partial = api.resolved_order(partial["orderId"].as_str().unwrap(), RESOLVE).await.unwrap();
    assert_eq!(partial["status"], "PARTIALLY_EXECUTED", "{partial}");
    assert_eq!(item(&partial, "mug")["status"], "EXECUTED");
    assert_eq!(
        (item(&partial, "rare")["status"].as_str(), item(&partial, "rare")["reason"].as_str()),
        (Some("CANCELED"), Some("INSUFFICIENT_STOCK"))
    );
    assert_eq!(
        (item(&partial, "ghost")["status"].as_str(), item(&partial, "ghost")["reason"].as_str()),
        (Some("CANCELED"), Some("UNKNOWN_PRODUCT"))
    );

    let none = api.place_order("u-2", &[("rare", 5)]).await.unwrap();
    let none = api.resolved_order(none["orderId"].as_str().unwrap(), RESOLVE).await.unwrap();
    assert_eq!(none["status"], "CANCELED", "no item executed: {none}");
    assert_eq!(api.product("rare").await.unwrap()["available"], 1, "a rejected item holds nothing");
    assert_invariants(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn canceling_releases_every_reserved_unit_before_and_after_reservation() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 0).await.unwrap();

    // After the reservation.
    let reserved = api.place_order("u-1", &[("mug", 4)]).await.unwrap();
    let id = reserved["orderId"].as_str().unwrap();
    api.resolved_order(id, RESOLVE).await.unwrap();
    assert_eq!(api.product("mug").await.unwrap()["reserved"], 4);
    let (status, body) = api.update_order(id, json!({"status": "CANCELED"})).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "CANCELED");

    // Right after placing, most likely before the saga saw it.
    let early = api.place_order("u-1", &[("mug", 3)]).await.unwrap();
    let (status, _) =
        api.update_order(early["orderId"].as_str().unwrap(), json!({"status": "CANCELED"})).await.unwrap();
    assert_eq!(status, 200);

    // Both orders reserve (there is stock for both) and both are released; `reserved`
    // alone can read 0 between the first release and the second reservation.
    wait_for(|| async {
        let releases: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = 'mug' AND event_type = 'StockReleased'",
        )
        .fetch_one(&system.inventory_pool)
        .await
        .expect("counting releases");
        releases == 2
    })
    .await;
    let mug = api.product("mug").await.unwrap();
    assert_eq!((mug["available"].as_i64(), mug["reserved"].as_i64()), (Some(10), Some(0)), "every unit released");
    // A late outcome never executes an item of a canceled order.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early = api.order(early["orderId"].as_str().unwrap()).await.unwrap();
    assert_eq!(item(&early, "mug")["status"], "CANCELED", "{early}");
    assert_invariants(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn changing_a_quantity_reserves_or_releases_the_difference() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 0).await.unwrap();
    let order = api.place_order("u-1", &[("mug", 2)]).await.unwrap();
    let id = order["orderId"].as_str().unwrap().to_owned();
    api.resolved_order(&id, RESOLVE).await.unwrap();

    for (quantity, reserved) in [(6, 6), (1, 1)] {
        let (status, body) =
            api.update_order(&id, json!({"orderItems": [{"productId": "mug", "quantity": quantity}]})).await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(item(&body["data"], "mug")["status"], "PENDING", "a changed item waits for the inventory service");
        let order = api.resolved_order(&id, RESOLVE).await.unwrap();
        assert_eq!(item(&order, "mug")["status"], "EXECUTED", "{order}");
        assert_eq!(api.product("mug").await.unwrap()["reserved"], reserved, "after changing to {quantity}");
    }
    // Growing beyond the stock cancels the item and releases what it held.
    let (status, _) =
        api.update_order(&id, json!({"orderItems": [{"productId": "mug", "quantity": 50}]})).await.unwrap();
    assert_eq!(status, 200);
    let order = api.resolved_order(&id, RESOLVE).await.unwrap();
    assert_eq!(
        (item(&order, "mug")["status"].as_str(), order["status"].as_str()),
        (Some("CANCELED"), Some("CANCELED"))
    );
    assert_eq!(api.product("mug").await.unwrap()["reserved"], 0);
    assert_invariants(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn an_executed_order_goes_through_payment_shipping_and_delivery() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("mug", 10, 0).await.unwrap();
    let order = api.place_order("u-1", &[("mug", 1)]).await.unwrap();
    let id = order["orderId"].as_str().unwrap();
    api.resolved_order(id, RESOLVE).await.unwrap();
    for status in ["PAID", "SHIPPED", "DELIVERED"] {
        let (code, body) = api.update_order(id, json!({"status": status})).await.unwrap();
        assert_eq!((code.as_u16(), body["data"]["status"].as_str()), (200, Some(status)), "{body}");
    }
    let (code, body) = api.update_order(id, json!({"status": "CANCELED"})).await.unwrap();
    assert_eq!(code, 409, "a delivered order cannot be canceled: {body}");
    assert_invariants(&system).await;
    system.stop().await;
}

pub async fn wait_for<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not reached in 30 s");
}
