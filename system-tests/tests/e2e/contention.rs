//! Hot products and many orders: no oversell, every item resolves.

use std::time::Duration;

use futures::StreamExt;
use system_tests::{System, SystemOptions};

use crate::history::{assert_history_explains_every_order, assert_rebuild_is_exact};
use crate::invariants::{assert_invariants, wait_until_resolved};

#[tokio::test]
async fn five_hundred_concurrent_orders_for_one_hundred_units_execute_exactly_one_hundred() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    api.add_product("hot", 100, 10).await.unwrap();
    let placed: Vec<_> = futures::stream::iter(0..500)
        .map(|i| async move { api.place_order(&format!("u-{i}"), &[("hot", 1)]).await })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(placed.iter().all(Result::is_ok), "every POST accepted");
    wait_until_resolved(&system, Duration::from_secs(120)).await;
    let hot = api.product("hot").await.unwrap();
    assert_eq!((hot["available"].as_i64(), hot["reserved"].as_i64()), (Some(0), Some(100)), "{hot}");
    let executed: i64 = sqlx::query_scalar("SELECT count(*) FROM order_view WHERE status = 'EXECUTED'")
        .fetch_one(&system.oms_pool)
        .await
        .unwrap();
    assert_eq!(executed, 100, "exactly 100 orders executed");
    assert_invariants(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn a_thousand_orders_with_skewed_demand_and_cancels_keep_every_invariant() {
    let system = System::start(SystemOptions::default()).await.expect("system");
    let api = &system.api;
    let products: Vec<String> = (0..20).map(|i| format!("p-{i}")).collect();
    for (i, product) in products.iter().enumerate() {
        // The first products are hot and short of stock; the rest plentiful.
        api.add_product(product, if i < 3 { 150 } else { 2_000 }, 20).await.unwrap();
    }
    let products = &products;
    let placed: Vec<String> = futures::stream::iter(0..1000usize)
        .map(|i| async move {
            let hot = &products[i % 3];
            let other = &products[3 + (i * 7) % 17];
            let order = api
                .place_order(&format!("u-{}", i % 50), &[(hot, 1 + (i % 3) as u32), (other, 2)])
                .await
                .expect("POST");
            order["orderId"].as_str().unwrap().to_owned()
        })
        .buffer_unordered(32)
        .collect()
        .await;
    // Cancel every tenth order, and resize every seventh, while the saga works.
    futures::stream::iter(placed.iter().enumerate())
        .for_each_concurrent(16, |(i, id)| async move {
            if i % 10 == 0 {
                let (status, body) =
                    api.update_order(id, serde_json::json!({"status": "CANCELED"})).await.expect("PUT");
                assert!(status == 200 || status == 409, "{status} {body}");
            } else if i % 7 == 0 {
                let product = &products[3 + (i * 7) % 17];
                let (status, body) = api
                    .update_order(id, serde_json::json!({"orderItems": [{"productId": product, "quantity": 5}]}))
                    .await
                    .expect("PUT");
                assert!(status == 200 || status == 409, "{status} {body}");
            }
        })
        .await;
    wait_until_resolved(&system, Duration::from_secs(240)).await;
    assert_invariants(&system).await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM order_view").fetch_one(&system.oms_pool).await.unwrap();
    assert_eq!(orders, 1000, "every 2xx POST is an order");
    assert_history_explains_every_order(&system).await;
    assert_rebuild_is_exact(&system).await;
    system.stop().await;
}
