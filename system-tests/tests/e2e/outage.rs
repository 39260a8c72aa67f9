//! A broker outage: the broker hangs (SIGSTOP on a private broker, so the other
//! tests' broker is untouched) while orders come in. Orders must still be accepted,
//! their events wait in the event store, and once the broker is back (SIGCONT) every
//! order flows through the saga and resolves, with every invariant holding.

use std::time::Duration;

use system_tests::{DevBroker, System, SystemOptions};

use crate::invariants::{assert_invariants, wait_until_resolved};

const BEFORE: usize = 5;
const DURING: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_accepted_while_the_broker_hangs_and_flow_once_it_is_back() {
    let broker = DevBroker::start().await.expect("a private development broker");
    let system = System::start(SystemOptions { brokers: Some(broker.address.clone()), ..SystemOptions::default() })
        .await
        .expect("system");
    let api = &system.api;
    api.add_product("mug", 1000, 10).await.expect("adding mug");
    api.add_product("rare", 10, 0).await.expect("adding rare");

    // The pipeline works before the outage.
    for i in 0..BEFORE {
        let order = api.place_order(&format!("u-{i}"), &[("mug", 1)]).await.expect("placing an order");
        let order = api
            .resolved_order(order["orderId"].as_str().expect("order id"), Duration::from_secs(30))
            .await
            .expect("resolved before the outage");
        assert_eq!(order["status"], "EXECUTED", "{order}");
    }

    broker.pause().expect("pausing the broker");
    let mut placed = Vec::new();
    for i in 0..DURING {
        let order = api
            .place_order(&format!("u-{i}"), &[("mug", 2), ("rare", 1)])
            .await
            .expect("an order is accepted while the broker hangs");
        placed.push(order["orderId"].as_str().expect("order id").to_owned());
    }
    // Readiness tells the orchestrator the broker is gone (the probe times out at 1.5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ready = api.http.get(format!("{}/health/ready", api.oms)).send().await.expect("readiness answers");
    assert_eq!(ready.status().as_u16(), 503, "not ready while the broker hangs");
    for order_id in &placed {
        let order = api.order(order_id).await.expect("GET during the outage");
        assert_eq!(order["status"], "PENDING", "nothing resolves without the broker: {order}");
    }

    broker.resume().expect("resuming the broker");
    for order_id in &placed {
        let order = api
            .resolved_order(order_id, Duration::from_secs(60))
            .await
            .expect("every order resolves once the broker is back");
        let executed =
            order["orderItems"].as_array().expect("items").iter().filter(|item| item["status"] == "EXECUTED").count();
        assert!(executed >= 1, "mug is in stock for every order: {order}");
    }
    wait_until_resolved(&system, Duration::from_secs(30)).await;
    assert_invariants(&system).await;
    let rare = api.product("rare").await.expect("rare");
    assert_eq!(rare["reserved"], 10, "rare's 10 units went to 10 of the orders placed during the outage: {rare}");
    system.stop().await;
}
