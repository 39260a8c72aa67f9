//! Killing services with SIGKILL mid-run loses and doubles nothing: both services run
//! as real processes; each is killed while orders flow and started again.
//!
//! Broker quirk: on tansu 0.6.0, a consumer that rejoins its group before the killed
//! member's session has expired is assigned no partition, and the group never
//! rebalances again (seen with plain rdkafka consumers too; Apache Kafka rebalances
//! once the session expires). So the services run with a short session timeout and
//! each stays down longer than it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use system_tests::{Api, ProcessSystem, broker};
use tokio::time::Instant;

use crate::invariants::{assert_invariants, wait_until_resolved};

const ORDERS: usize = 300;
const PACE: Duration = Duration::from_millis(50);
/// The services' consumer session timeout, and how long each service stays down.
const SESSION_TIMEOUT_MS: &str = "3000";
const DOWNTIME: Duration = Duration::from_millis(4500);
/// How long one order's client keeps retrying before the test gives up on it.
const CLIENT_PATIENCE: Duration = Duration::from_secs(60);

/// One POST attempt as the client saw it.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    at: Instant,
    /// The status, or none when no answer came (connection refused or reset).
    status: Option<u16>,
    order_id: Option<String>,
    body: String,
}

fn lines(i: usize) -> Vec<(String, u32)> {
    let mut lines = vec![("hot".to_owned(), 1 + (i % 2) as u32), (format!("p-{}", i % 5), 1 + (i % 3) as u32)];
    if i % 20 == 0 {
        lines.push(("ghost".to_owned(), 1));
    }
    lines
}

fn user(i: usize) -> String {
    format!("u-{}", i % 25)
}

/// Places order `i` with its idempotency key, retrying (same key) until a 2xx or a 4xx.
async fn place(api: &Api, i: usize, log: &Mutex<Vec<Attempt>>) {
    let key = format!("crash-order-{i}");
    let lines = lines(i);
    let lines: Vec<(&str, u32)> = lines.iter().map(|(p, q)| (p.as_str(), *q)).collect();
    let deadline = Instant::now() + CLIENT_PATIENCE;
    loop {
        let at = Instant::now();
        let attempt = match api.post_order_with_key(&user(i), &lines, &key).await {
            Ok((status, body)) => Attempt {
                key: key.clone(),
                at,
                status: Some(status.as_u16()),
                order_id: body["data"]["orderId"].as_str().map(str::to_owned),
                body: body.to_string(),
            },
            Err(error) => Attempt { key: key.clone(), at, status: None, order_id: None, body: format!("{error:#}") },
        };
        let done = attempt.status.is_some_and(|s| s < 500);
        log.lock().expect("attempt log").push(attempt);
        if done || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Event ids of `topic`'s messages.
async fn published_event_ids(system: &ProcessSystem, topic: &str) -> BTreeSet<String> {
    let (kafka, name) = (system.kafka.clone(), topic.to_owned());
    let messages = tokio::task::spawn_blocking(move || broker::read_topic(&kafka, &name, Duration::from_secs(30))).await.expect("reader").expect("reading a topic");
    messages.iter().filter_map(|m| m.json()).filter_map(|body| body["eventId"].as_str().map(str::to_owned)).collect()
}

/// Checks invariant 3's "every committed event reaches Kafka": each stored event that
/// its service publishes is on its topic (perhaps more than once).
async fn assert_every_event_published(system: &ProcessSystem) {
    let topics = &system.kafka.topics;
    let on_order_events = published_event_ids(system, &topics.order_events).await;
    let stored: Vec<(uuid::Uuid,)> = sqlx::query_as("SELECT event_id FROM events WHERE aggregate_type = 'Order'").fetch_all(&system.oms_pool).await.unwrap();
    let missing: Vec<_> = stored.iter().filter(|(id,)| !on_order_events.contains(&id.to_string())).collect();
    assert!(missing.is_empty(), "{} of {} order events never reached {}: {missing:?}", missing.len(), stored.len(), topics.order_events);

    let on_outcomes = published_event_ids(system, &topics.order_outcomes).await;
    let on_alerts = published_event_ids(system, &topics.stock_alerts).await;
    let stored: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT event_id, event_type FROM events WHERE aggregate_type = 'Product'
            AND event_type IN ('StockReserved', 'ReservationReduced', 'ReservationRejected', 'LowStockReached', 'OutOfStock', 'BackInStock')",
    )
    .fetch_all(&system.inventory_pool)
    .await
    .unwrap();
    let missing: Vec<_> = stored
        .iter()
        .filter(|(id, event_type)| {
            let topic = if event_type.starts_with("Stock") || event_type.starts_with("Reservation") { &on_outcomes } else { &on_alerts };
            !topic.contains(&id.to_string())
        })
        .collect();
    assert!(missing.is_empty(), "{} of {} product events never reached their topic: {missing:?}", missing.len(), stored.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_both_services_mid_run_loses_and_doubles_no_order() {
    let mut system = ProcessSystem::start(3, &[("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS)]).await.expect("starting both services as processes");
    eprintln!("service logs in {}", system.log_dir.display());
    let api = system.api.clone();
    api.add_product("hot", 150, 20).await.unwrap();
    for p in 0..5 {
        api.add_product(&format!("p-{p}"), 400, 10).await.unwrap();
    }

    // Orders at a steady pace, each retried with its key until the OMS answers.
    let log: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let started = Instant::now();
    let placing = tokio::spawn({
        let (api, log) = (api.clone(), log.clone());
        async move {
            let mut ticker = tokio::time::interval(PACE);
            let mut clients = Vec::new();
            for i in 0..ORDERS {
                ticker.tick().await;
                let (api, log) = (api.clone(), log.clone());
                clients.push(tokio::spawn(async move { place(&api, i, &log).await }));
            }
            for client in clients {
                client.await.expect("client task");
            }
        }
    });

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

    tokio::time::timeout(CLIENT_PATIENCE + Duration::from_secs(30), placing).await.expect("placing orders ends").expect("placing task");
    let attempts = log.lock().expect("attempt log").clone();
    eprintln!("placed {ORDERS} orders with {} attempts in {:?}", attempts.len(), started.elapsed());

    // The OMS answered while the inventory service was down; while the OMS itself was
    // down, POSTs failed and were retried.
    let while_inventory_down: Vec<&Attempt> = attempts.iter().filter(|a| a.at >= inventory_down && a.at < inventory_up).collect();
    assert!(!while_inventory_down.is_empty(), "orders were placed while the inventory service was down");
    let failed: Vec<&&Attempt> = while_inventory_down.iter().filter(|a| !a.status.is_some_and(|s| (200..300).contains(&s))).collect();
    assert!(failed.is_empty(), "every POST succeeds while only the inventory service is down: {failed:?}");
    assert!(attempts.iter().any(|a| a.at >= oms_down && a.at < oms_up && a.status.is_none()), "some POSTs hit the OMS while it was down");

    // Every key ends with one 2xx; all answers for a key name the same order.
    let mut accepted: HashMap<String, String> = HashMap::new();
    for attempt in &attempts {
        match attempt.status {
            Some(status) if (200..300).contains(&status) => {
                let order_id = attempt.order_id.clone().unwrap_or_else(|| panic!("a 2xx without an order: {attempt:?}"));
                let previous = accepted.insert(attempt.key.clone(), order_id.clone());
                assert!(previous.is_none_or(|p| p == order_id), "one key, one order: {attempt:?}");
            }
            Some(status) if status < 500 => panic!("a POST of {} refused with {status}: {}", attempt.key, attempt.body),
            _ => {}
        }
    }
    assert_eq!(accepted.len(), ORDERS, "every order was accepted in the end");
    let distinct: BTreeSet<&String> = accepted.values().collect();
    assert_eq!(distinct.len(), ORDERS, "distinct keys, distinct orders");

    wait_until_resolved(&system, Duration::from_secs(90)).await;
    eprintln!("every order resolved after {:?}", started.elapsed());
    assert_invariants(&system).await;

    // Every 2xx POST is an order GET returns, as placed; retrying a key once more
    // answers the same order and places nothing.
    let api = &api;
    let accepted = &accepted;
    futures::stream::iter(0..ORDERS)
        .for_each_concurrent(16, |i| async move {
            let key = format!("crash-order-{i}");
            let order_id = &accepted[&key];
            let order = api.order(order_id).await.unwrap_or_else(|e| panic!("GET of accepted order {order_id} ({key}): {e:#}"));
            assert_eq!(order["userId"], user(i).as_str(), "{order}");
            let products: BTreeSet<&str> = order["orderItems"].as_array().expect("items").iter().filter_map(|item| item["productId"].as_str()).collect();
            let expected = lines(i);
            assert_eq!(products, expected.iter().map(|(p, _)| p.as_str()).collect(), "{order}");
            let expected: Vec<(&str, u32)> = expected.iter().map(|(p, q)| (p.as_str(), *q)).collect();
            let (status, body) = api.post_order_with_key(&user(i), &expected, &key).await.expect("retrying a POST");
            assert!(status.is_success(), "a retry is answered: {status} {body}");
            assert_eq!(body["data"]["orderId"].as_str(), Some(order_id.as_str()), "a retry answers the same order");
        })
        .await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM order_view").fetch_one(&system.oms_pool).await.unwrap();
    assert_eq!(orders, ORDERS as i64, "one order per idempotency key in the view");
    let placements: Vec<(String, i64)> = sqlx::query_as("SELECT aggregate_id, count(*) FROM events WHERE event_type = 'OrderPlaced' GROUP BY aggregate_id")
        .fetch_all(&system.oms_pool)
        .await
        .unwrap();
    assert_eq!(placements.len(), ORDERS, "one placement per key in the event store");
    assert!(placements.iter().all(|(_, n)| *n == 1), "no order placed twice: {:?}", placements.iter().filter(|(_, n)| *n > 1).collect::<Vec<_>>());

    assert_every_event_published(&system).await;
    eprintln!("checked after {:?}", started.elapsed());
    assert!(system.oms.is_running() && system.inventory.is_running(), "both services still run");
    drop(system.oms);
    drop(system.inventory);
    let _ = std::fs::remove_dir_all(&system.log_dir);
}
