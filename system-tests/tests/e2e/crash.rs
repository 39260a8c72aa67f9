//! Killing services with SIGKILL mid-run loses and doubles nothing: both services run
//! as real processes; each is killed while orders flow and started again.
//!
//! Each comes back before the killed member's session has expired, so its new
//! consumer joins a group that still counts the dead member: the group must rebalance
//! once that session expires, or the dead member's partitions stay unconsumed.

use std::time::Duration;

use system_tests::ProcessSystem;
use tokio::time::Instant;

use crate::load::{Attempt, Clients, accepted_orders, assert_nothing_lost_or_doubled};

const ORDERS: usize = 300;
const PACE: Duration = Duration::from_millis(50);
/// The services' consumer session timeout (Apache Kafka's smallest by default), and
/// how long each service stays down: less.
const SESSION_TIMEOUT_MS: &str = "6000";
const DOWNTIME: Duration = Duration::from_millis(1500);
const RUN: &str = "crash";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_both_services_mid_run_loses_and_doubles_no_order() {
    let mut system = ProcessSystem::start(3, &[("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS)])
        .await
        .expect("starting both services as processes");
    eprintln!("service logs in {}", system.log_dir.display());
    let api = system.api.clone();

    // Orders at a steady pace, each retried with its key until the OMS answers.
    let clients = Clients::start(vec![api.clone()], 150, RUN, ORDERS, PACE).await;
    let started = clients.started;

    tokio::time::sleep_until(started + Duration::from_secs(3)).await;
    system.inventory.kill();
    let inventory_down = Instant::now();
    tokio::time::sleep(DOWNTIME).await;
    let inventory_up = Instant::now();
    system.inventory.start().expect("restarting the inventory service");
    system.inventory.wait_ready(&api.http, Duration::from_secs(30)).await.expect("inventory ready again");

    tokio::time::sleep_until(started + Duration::from_secs(9)).await;
    system.oms.kill();
    let oms_down = Instant::now();
    tokio::time::sleep(DOWNTIME).await;
    system.oms.start().expect("restarting the OMS");
    system.oms.wait_ready(&api.http, Duration::from_secs(30)).await.expect("OMS ready again");
    let oms_up = Instant::now();

    let attempts = clients.finish().await;

    // The OMS answered while the inventory service was down; while the OMS itself was
    // down, POSTs failed and were retried.
    let while_inventory_down: Vec<&Attempt> =
        attempts.iter().filter(|a| a.at >= inventory_down && a.at < inventory_up).collect();
    assert!(!while_inventory_down.is_empty(), "orders were placed while the inventory service was down");
    let failed: Vec<&&Attempt> =
        while_inventory_down.iter().filter(|a| !a.status.is_some_and(|s| (200..300).contains(&s))).collect();
    assert!(failed.is_empty(), "every POST succeeds while only the inventory service is down: {failed:?}");
    assert!(
        attempts.iter().any(|a| a.at >= oms_down && a.at < oms_up && a.status.is_none()),
        "some POSTs hit the OMS while it was down"
    );

    // Every key ends with one 2xx; all answers for a key name the same order.
    let accepted = accepted_orders(&attempts, ORDERS);

    assert_nothing_lost_or_doubled(&system, &system.kafka, RUN, &accepted, Duration::from_secs(90)).await;
    eprintln!("checked after {:?}", started.elapsed());
    assert!(system.oms.is_running() && system.inventory.is_running(), "both services still run");
    drop(system.oms);
    drop(system.inventory);
    let _ = std::fs::remove_dir_all(&system.log_dir);
}
