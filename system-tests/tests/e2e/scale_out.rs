//! Scale-out: two OMS and two inventory instances, on ports of their own, against one
//! database and one broker, under load. The saga instances share the partitions of
//! one consumer group, the OMS outcome consumers those of theirs, and one relay per
//! schema publishes while the other stands by. Then the inventory instance that leads
//! its relay is killed (SIGKILL) mid-run: once its session expires the other takes
//! over its partitions, as it takes over the relay, with no replacement started, and
//! nothing is lost.
//!
//! Who consumes and who relays is read from each instance's `/metrics`: a consumer
//! reports how many partitions it is assigned, and only the relay that leads reports
//! its lag.
//!
//! Every order resolving after the kill is what proves the hand-over: orders keep
//! coming on every partition, those of the killed instance included.

use std::time::Duration;

use system_tests::{Api, ProcessSystem, Service, ServiceProcess};
use telemetry::names;
use tokio::time::Instant;

use crate::load::{Clients, accepted_orders, assert_nothing_lost_or_doubled};
use crate::scrape::{self, matching, total};

const ORDERS: usize = 400;
const PACE: Duration = Duration::from_millis(30);
const PARTITIONS: usize = 4;
const RUN: &str = "scale-out";
const RELAY: &str = "kafka-relay";

/// Whether the instance whose metrics are `text` leads its schema's relay.
fn leads_the_relay(text: &str) -> bool {
    !matching(text, names::RELAY_LAG, &[("feed", RELAY)]).is_empty()
}

/// How many partitions of `topic` the instance reports assigned as member of `group`.
fn partitions_assigned(text: &str, group: &str, topic: &str) -> usize {
    total(text, names::CONSUMER_ASSIGNED_PARTITIONS, &[("group", group), ("topic", topic)]) as usize
}

/// Messages of `topic` the instance applied as member of `group`.
fn applied(text: &str, group: &str, topic: &str) -> f64 {
    total(text, names::MESSAGES_CONSUMED, &[("group", group), ("topic", topic), ("result", "applied")])
}

/// Waits until both `instances` applied messages of `topic` as members of `group`.
async fn wait_until_both_consume(instances: [&ServiceProcess; 2], http: &reqwest::Client, group: &str, topic: &str) {
    for (n, instance) in instances.into_iter().enumerate() {
        let what = format!("instance {} of group {group} applies messages of {topic}", n + 1);
        scrape::until(instance, http, &what, Duration::from_secs(30), |m| applied(m, group, topic) > 0.0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_of_each_service_share_the_work_and_one_takes_over_when_the_other_is_killed() {
    let env = [("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000"), ("KAFKA_LAG_INTERVAL_MS", "500")];
    let mut system = ProcessSystem::start(PARTITIONS as i32, &env).await.expect("starting both services as processes");
    eprintln!("service logs in {}", system.log_dir.display());
    let http = system.api.http.clone();
    let mut oms2 = system.start_instance(Service::Oms).expect("a second OMS");
    let mut inventory2 = system.start_instance(Service::Inventory).expect("a second inventory service");
    oms2.wait_ready(&http, Duration::from_secs(60)).await.expect("the second OMS is ready");
    inventory2.wait_ready(&http, Duration::from_secs(60)).await.expect("the second inventory service is ready");
    let (order_events, outcomes) =
        (system.kafka.topics.order_events.clone(), system.kafka.topics.order_outcomes.clone());
    let (inventory_group, oms_group) = (system.inventory_group.clone(), system.oms_group.clone());

    // One inventory instance leads its schema's relay (usually the first, which
    // started first; the advisory lock decides); the other waits.
    let deadline = Instant::now() + Duration::from_secs(15);
    let first_leads = loop {
        let metrics = [
            system.inventory.metrics(&http).await.expect("metrics"),
            inventory2.metrics(&http).await.expect("metrics"),
        ];
        match metrics.iter().filter(|m| leads_the_relay(m)).count() {
            0 => assert!(Instant::now() < deadline, "no inventory instance leads the relay within 15 s"),
            1 => break leads_the_relay(&metrics[0]),
            _ => panic!("both inventory instances lead the relay"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (leader, survivor) =
        if first_leads { (&mut system.inventory, &mut inventory2) } else { (&mut inventory2, &mut system.inventory) };

    let api2 = Api::new(oms2.base_url.clone(), survivor.base_url.clone());
    let clients = Clients::start(vec![system.api.clone(), api2.clone()], 200, RUN, ORDERS, PACE).await;
    let started = clients.started;

    // Both saga instances reserve, both OMS instances apply outcomes: each group's
    // partitions are split between its two members.
    wait_until_both_consume([&*leader, &*survivor], &http, &inventory_group, &order_events).await;
    wait_until_both_consume([&system.oms, &oms2], &http, &oms_group, &outcomes).await;
    let has_a_share = |m: &str| (1..PARTITIONS).contains(&partitions_assigned(m, &inventory_group, &order_events));
    scrape::until(
        &*survivor,
        &http,
        "the surviving saga instance has part of the partitions",
        Duration::from_secs(30),
        has_a_share,
    )
    .await;
    eprintln!("the saga instances share the partitions after {:?}", started.elapsed());

    leader.kill();
    eprintln!("killed the inventory instance leading the relay after {:?}", started.elapsed());
    scrape::until(&*survivor, &http, "the survivor leads the relay", Duration::from_secs(15), leads_the_relay).await;
    // The killed member's session expires (6 s), the group rebalances, and the
    // survivor is assigned every partition: nobody has to join for that.
    let takes_every_partition = |m: &str| partitions_assigned(m, &inventory_group, &order_events) == PARTITIONS;
    scrape::until(
        &*survivor,
        &http,
        "the survivor takes every partition",
        Duration::from_secs(30),
        takes_every_partition,
    )
    .await;
    eprintln!("the survivor took every partition after {:?}", started.elapsed());

    let attempts = clients.finish().await;
    let accepted = accepted_orders(&attempts, ORDERS);

    // The instances still running, for the invariant checks.
    let survivors = (api2.clone(), system.oms_pool.clone(), system.inventory_pool.clone());
    assert_nothing_lost_or_doubled(&survivors, &system.kafka, RUN, &accepted, Duration::from_secs(60)).await;
    let oms_relays = [system.oms.metrics(&http).await.expect("metrics"), oms2.metrics(&http).await.expect("metrics")];
    assert_eq!(
        oms_relays.iter().filter(|m| leads_the_relay(m)).count(),
        1,
        "one OMS relay published, the other stood by"
    );
    assert!(system.oms.is_running() && oms2.is_running() && survivor.is_running(), "the other instances still run");
    eprintln!("checked after {:?}", started.elapsed());
    drop((oms2, inventory2));
    let _ = std::fs::remove_dir_all(&system.log_dir);
}
