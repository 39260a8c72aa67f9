//! Graceful shutdown: a rolling restart under load. Each service in turn (the
//! inventory service, then the OMS) gets SIGTERM, as an orchestrator sends it on a
//! rolling update, while orders flow; it must exit 0 soon, having finished the
//! requests in flight and committed the offsets of what it processed, and it is
//! started again at once. Afterwards every order resolves, every invariant holds, and
//! no order was lost or processed twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use messaging::KafkaSettings;
use sqlx::PgPool;
use system_tests::{ProcessSystem, ServiceProcess, broker};
use tokio::time::Instant;

use crate::load::{Clients, accepted_orders, add_products, assert_nothing_lost_or_doubled};

const ORDERS: usize = 300;
const PACE: Duration = Duration::from_millis(40);
const RUN: &str = "rolling";
/// How long a service may take to exit after SIGTERM, with nothing slow in flight.
const STOP_BOUND: Duration = Duration::from_secs(10);

/// Where each event id on `topic` first appears: (partition, offset).
async fn first_offsets(kafka: &KafkaSettings, topic: &str) -> BTreeMap<String, (i32, i64)> {
    let messages = broker::read_topic_async(kafka, topic, Duration::from_secs(30)).await.expect("reading a topic");
    let mut first = BTreeMap::new();
    for message in &messages {
        if let Some(event_id) = message.json().and_then(|body| body["eventId"].as_str().map(str::to_owned)) {
            let at = first.entry(event_id).or_insert((message.partition, message.offset));
            *at = (*at).min((message.partition, message.offset));
        }
    }
    first
}

/// Checks that consumer group `group` committed, in every partition of `topic`, past
/// the last message it had processed: a message whose event id caused events written
/// by `actor` in `pool`. (Redelivered copies are ignored: the first copy counts.)
async fn assert_committed_what_it_processed(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
    pool: &PgPool,
    actor: &str,
) {
    let processed: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT metadata->>'causation_id' FROM events WHERE metadata->>'actor' = $1")
            .bind(actor)
            .fetch_all(pool)
            .await
            .expect("causes of the consumer's events");
    let processed: BTreeSet<String> = processed.into_iter().collect();
    let mut last_processed: BTreeMap<i32, i64> = BTreeMap::new();
    for (event_id, (partition, offset)) in first_offsets(kafka, topic).await {
        if processed.contains(&event_id) {
            let last = last_processed.entry(partition).or_insert(offset);
            *last = (*last).max(offset);
        }
    }
    assert!(!last_processed.is_empty(), "{group} processed messages of {topic} before it stopped");
    let (kafka, group_name, topic_name) = (kafka.clone(), group.to_owned(), topic.to_owned());
    let committed = tokio::task::spawn_blocking(move || broker::committed_offsets(&kafka, &group_name, &topic_name))
        .await
        .expect("offsets task")
        .expect("offsets");
    for (partition, last) in last_processed {
        let committed = committed.get(&partition).copied().flatten();
        assert!(
            committed.is_some_and(|c| c > last),
            "{group} stopped having processed {topic}/{partition} up to offset {last}, but committed {committed:?}"
        );
    }
}

/// Stops `service` with SIGTERM and checks it exits 0 within [`STOP_BOUND`].
async fn stop_gracefully(service: &mut ServiceProcess, name: &str) {
    let (status, took) =
        service.terminate(STOP_BOUND).await.unwrap_or_else(|e| panic!("{name} stops on SIGTERM: {e:#}"));
    eprintln!("{name} exited with {status} {took:?} after SIGTERM");
    assert!(status.success(), "{name} exits 0 after SIGTERM, not {status}; see {}", service.log().display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_loses_and_doubles_no_order() {
    let mut system = ProcessSystem::start(3, &[]).await.expect("starting both services as processes");
    eprintln!("service logs in {}", system.log_dir.display());
    let api = system.api.clone();
    let clients = Clients::start(vec![api.clone()], 150, RUN, ORDERS, PACE).await;
    let started = clients.started;

    tokio::time::sleep_until(started + Duration::from_secs(3)).await;
    stop_gracefully(&mut system.inventory, "the inventory service").await;
    let order_events = system.kafka.topics.order_events.clone();
    assert_committed_what_it_processed(
        &system.kafka,
        &system.inventory_group,
        &order_events,
        &system.inventory_pool,
        "inventory-saga",
    )
    .await;
    system.inventory.start().expect("restarting the inventory service");
    system.inventory.wait_ready(&api.http, Duration::from_secs(30)).await.expect("inventory ready again");

    tokio::time::sleep_until(started + Duration::from_secs(7)).await;
    stop_gracefully(&mut system.oms, "the OMS").await;
    let oms_down = Instant::now();
    let outcomes = system.kafka.topics.order_outcomes.clone();
    assert_committed_what_it_processed(&system.kafka, &system.oms_group, &outcomes, &system.oms_pool, "oms-outcomes")
        .await;
    system.oms.start().expect("restarting the OMS");
    system.oms.wait_ready(&api.http, Duration::from_secs(30)).await.expect("OMS ready again");
    let oms_up = Instant::now();

    let attempts = clients.finish().await;
    assert!(
        attempts.iter().any(|a| a.at >= oms_down && a.at < oms_up && a.status.is_none()),
        "some POSTs found the OMS down and were retried"
    );
    let failed: Vec<_> = attempts.iter().filter(|a| a.status.is_some_and(|s| s >= 500)).collect();
    assert!(failed.is_empty(), "a request the OMS took in is answered, never cut off with a 5xx: {failed:?}");
    let accepted = accepted_orders(&attempts, ORDERS);

    assert_nothing_lost_or_doubled(&system, &system.kafka, RUN, &accepted, Duration::from_secs(60)).await;
    eprintln!("checked after {:?}", started.elapsed());
    stop_gracefully(&mut system.oms, "the OMS").await;
    stop_gracefully(&mut system.inventory, "the inventory service").await;
    let _ = std::fs::remove_dir_all(&system.log_dir);
}

/// The grace the services get in [`sigterm_with_the_broker_killed_exits_within_the_grace`].
const SHORT_GRACE: Duration = Duration::from_secs(5);
/// What a process may take beyond its grace to be gone (the exit itself, a last log line).
const EXIT_MARGIN: Duration = Duration::from_secs(2);
/// How long the broker stays dead before the services get SIGTERM: the relay, the
/// consumers and the readiness probe are all retrying against it by then.
const OUTAGE: Duration = Duration::from_secs(8);

/// Lines of `log` (from byte `from` on) that librdkafka or our Kafka loops wrote about
/// the dead broker (printed, to measure the log's noise during an outage).
fn broker_complaints(log: &std::path::Path, from: usize) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            ["AllBrokersDown", "Connection refused", "BrokerTransportFailure", "consumer error"]
                .iter()
                .any(|m| line.contains(m))
        })
        .count()
}

/// With its broker dead (killed, connections refused), a service that gets SIGTERM
/// exits within its configured grace, with status 0, logging what it left unfinished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_the_broker_killed_exits_within_the_grace() {
    let mut broker = system_tests::DevBroker::start().await.expect("a private development broker");
    let grace_ms = SHORT_GRACE.as_millis().to_string();
    let env = [("SHUTDOWN_GRACE_MS", grace_ms.as_str())];
    let options =
        system_tests::ProcessOptions { env: &env, brokers: Some(broker.address.clone()), ..Default::default() };
    let mut system = ProcessSystem::start_with(options).await.expect("both services on a private broker");
    let api = system.api.clone();
    add_products(&api, 2).await;
    let order = api.place_order("before-the-outage", &[("p-0", 1)]).await.expect("placing an order");
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    api.resolved_order(&order_id, Duration::from_secs(60)).await.expect("the order resolves before the outage");

    let logged_before: Vec<usize> = [system.oms.log(), system.inventory.log()]
        .iter()
        .map(|log| std::fs::metadata(log).map_or(0, |m| m.len() as usize))
        .collect();
    broker.kill();
    // Orders are still taken: their events wait in the event store.
    api.place_order("during-the-outage", &[("p-1", 1)]).await.expect("placing an order with the broker dead");
    tokio::time::sleep(OUTAGE).await;
    for ((name, log), from) in
        [("oms", system.oms.log()), ("inventory", system.inventory.log())].into_iter().zip(&logged_before)
    {
        let complaints = broker_complaints(log, *from);
        // Measured, not yet bounded: librdkafka's error callback logs each failed
        // reconnection of each client (about 8 lines a second for the OMS).
        eprintln!("{name} logged {complaints} lines about the dead broker in {OUTAGE:?}");
    }

    for (service, name) in [(&mut system.oms, "the OMS"), (&mut system.inventory, "the inventory service")] {
        let (status, took) = service
            .terminate(SHORT_GRACE + EXIT_MARGIN)
            .await
            .unwrap_or_else(|e| panic!("{name} exits after SIGTERM: {e:#}"));
        eprintln!("{name} exited with {status} {took:?} after SIGTERM with the broker dead");
        assert!(status.success(), "{name} exits 0, not {status}; see {}", service.log().display());
        assert!(took <= SHORT_GRACE + EXIT_MARGIN, "{name} took {took:?}");
    }
    let _ = std::fs::remove_dir_all(&system.log_dir);
}
