//! Database traffic blackholed: two OMS instances, one reaching PostgreSQL through a
//! TCP proxy. That one leads the relay and the order-view follower when, in the middle
//! of a stream of orders, its database traffic is blackholed for 60 s (nothing passes,
//! no socket closes: a network partition, or a firewall dropping packets). The other
//! instance must take both over within a bounded time, the blackholed one must stand
//! by once its network returns, and every order must resolve with every invariant
//! holding.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use system_tests::{ProcessSystem, Service, TcpProxy};
use telemetry::names;
use tokio::time::Instant;

use crate::load::{Clients, accepted_orders, assert_nothing_lost_or_doubled};
use crate::scrape::{self, matching, total};

const ORDERS: usize = 300;
const PACE: Duration = Duration::from_millis(300);
const BLACKHOLE_AFTER: Duration = Duration::from_secs(20);
const BLACKHOLE: Duration = Duration::from_secs(60);
/// The bound the takeover must meet: the leader gives up its connection after at most
/// 15 s (a 10 s statement timeout after a 5 s keep-alive) and the server ends its
/// session 25 s after it last heard from it; a standby tries every second.
const TAKEOVER_BOUND: Duration = Duration::from_secs(45);
const RUN: &str = "blackhole";
const RELAY: &str = "kafka-relay";
const VIEW: &str = "view-catch-up";

/// Whether the instance whose metrics are `text` leads the relay (only the leader
/// measures its lag).
fn leads_the_relay(text: &str) -> bool {
    !matching(text, names::RELAY_LAG, &[("feed", RELAY)]).is_empty()
}

/// Whether it leads the order-view follower.
fn leads_the_view(text: &str) -> bool {
    !matching(text, names::PROJECTION_LAG, &[("feed", VIEW)]).is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oms_whose_database_traffic_is_blackholed_hands_its_feeds_over_and_every_order_resolves() {
    let env = [("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000"), ("KAFKA_LAG_INTERVAL_MS", "500")];
    let mut system = ProcessSystem::start(3, &env).await.expect("starting both services as processes");
    eprintln!("service logs in {}", system.log_dir.display());
    let http = system.api.http.clone();

    let database: PgConnectOptions = system.database_url.parse().expect("the database URL parses");
    let server = tokio::net::lookup_host((database.get_host(), database.get_port()))
        .await
        .expect("the server's address")
        .next()
        .expect("an address");
    let proxy = TcpProxy::start(server).await.expect("the proxy listens");
    let proxied_url = database.clone().host("127.0.0.1").port(proxy.port()).to_url_lossy().to_string();
    let mut behind_proxy = system.start_instance_reaching(Service::Oms, &proxied_url).expect("an OMS behind the proxy");
    behind_proxy.wait_ready(&http, Duration::from_secs(60)).await.expect("the proxied OMS is ready");

    // The first instance leads both feeds since it started: restarted, it hands them
    // to the proxied one and stands by when it is back.
    system.oms.terminate(Duration::from_secs(30)).await.expect("the first OMS stops");
    scrape::until(
        &behind_proxy,
        &http,
        "the proxied OMS leads the relay and the view follower",
        Duration::from_secs(15),
        |m| leads_the_relay(m) && leads_the_view(m),
    )
    .await;
    system.oms.start().expect("the first OMS starts again");
    system.oms.wait_ready(&http, Duration::from_secs(60)).await.expect("the first OMS is ready again");
    let direct = system.oms.metrics(&http).await.expect("metrics");
    assert!(!leads_the_relay(&direct) && !leads_the_view(&direct), "the restarted OMS stands by");

    // Orders go to the direct instance (the proxied one cannot serve while cut off);
    // outcomes are consumed by both, each for its partitions.
    let clients = Clients::start(vec![system.api.clone()], 200, RUN, ORDERS, PACE).await;
    let started = clients.started;

    tokio::time::sleep(BLACKHOLE_AFTER).await;
    proxy.blackhole(true);
    let blackholed_at = Instant::now();
    eprintln!("blackholed the proxied OMS's database traffic after {:?}", started.elapsed());
    scrape::until(&system.oms, &http, "the direct OMS takes the relay over", TAKEOVER_BOUND, leads_the_relay).await;
    let relay_taken_over = blackholed_at.elapsed();
    scrape::until(
        &system.oms,
        &http,
        "the direct OMS takes the view follower over",
        TAKEOVER_BOUND.saturating_sub(relay_taken_over),
        leads_the_view,
    )
    .await;
    eprintln!(
        "the direct OMS leads the relay {relay_taken_over:?} and the view follower {:?} after the blackhole began",
        blackholed_at.elapsed()
    );

    tokio::time::sleep(BLACKHOLE.saturating_sub(blackholed_at.elapsed())).await;
    proxy.blackhole(false);
    eprintln!("traffic passes again after {:?}", started.elapsed());
    // Whatever the old leader had in flight when it lost its connection ended long
    // ago; from now on it must publish nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let published_by_old = total(&behind_proxy.metrics(&http).await.expect("metrics"), names::RELAY_PUBLISHED, &[]);

    let attempts = clients.finish().await;
    let accepted = accepted_orders(&attempts, ORDERS);
    assert_nothing_lost_or_doubled(&system, &system.kafka, RUN, &accepted, Duration::from_secs(120)).await;

    let old = behind_proxy.metrics(&http).await.expect("metrics");
    assert_eq!(
        total(&old, names::RELAY_PUBLISHED, &[]),
        published_by_old,
        "the old leader stood by once its network returned: it published nothing more"
    );
    assert!(
        total(&system.oms.metrics(&http).await.expect("metrics"), names::RELAY_PUBLISHED, &[]) > 0.0,
        "the new leader published"
    );
    assert!(system.oms.is_running() && behind_proxy.is_running(), "both OMS instances still run");
    eprintln!("checked after {:?}", started.elapsed());
    drop(behind_proxy);
    let _ = std::fs::remove_dir_all(&system.log_dir);
}
