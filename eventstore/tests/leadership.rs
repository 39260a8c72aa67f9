//! Feed leadership when the leader's database connection dies half-open: two followers
//! of one feed, the leader reaching PostgreSQL through a TCP proxy that blackholes its
//! traffic (nothing passes, nothing closes), the other connected directly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventstore::{Feed, FeedPosition};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

// The proxy lives with the system tests, which depend on this crate (through the
// services): included as source, it adds no dependency either way.
#[path = "../../system-tests/src/tcp_proxy.rs"]
#[allow(dead_code)]
mod tcp_proxy;

use tcp_proxy::TcpProxy;

mod support;
use support::append;

const FEED: &str = "relay";
const BEHIND_PROXY: &str = "follower-behind-proxy";
const DIRECT: &str = "follower-direct";
const WAITING: &str = "follower-waiting";

/// A test database, migrated, and a pool on it for writers and checks.
async fn database() -> (PgConnectOptions, PgPool) {
    let url = migrations::testing::create_database().await.expect("a test database");
    let pool = migrations::connect_and_migrate(&url, "oms", 4, &migrations::OMS).await.expect("migrated");
    (url.parse().expect("the test URL parses"), pool)
}

/// A proxy to the server of `options`.
async fn proxy_to(options: &PgConnectOptions) -> TcpProxy {
    let host = options.get_host();
    assert!(!host.starts_with('/'), "the test server must be reached over TCP to be proxied, not by the socket {host}");
    let target = tokio::net::lookup_host((host, options.get_port()))
        .await
        .expect("the server's address")
        .next()
        .expect("an address");
    TcpProxy::start(target).await.expect("the proxy listens")
}

/// A pool of a follower's own, its sessions named `name` (pg_stat_activity tells whose
/// session holds the lock), settings as the services' pools.
async fn follower_pool(options: &PgConnectOptions, name: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.clone().application_name(name).options([("search_path", "oms")]))
        .await
        .expect("the follower's pool")
}

/// An event handled by a follower.
#[derive(Debug, Clone)]
struct Handled {
    by: &'static str,
    aggregate_id: String,
    at: Instant,
}

type Journal = Arc<Mutex<Vec<Handled>>>;

/// Follows the feed on `pool` in a task, writing what it handles to `journal`.
fn follow(
    pool: PgPool,
    by: &'static str,
    journal: &Journal,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (journal, shutdown) = (journal.clone(), shutdown.clone());
    tokio::spawn(async move {
        Feed::new(pool, FEED)
            .polling_every(Duration::from_millis(100))
            .follow(5, &shutdown, |events| {
                let journal = journal.clone();
                async move {
                    let at = Instant::now();
                    journal.lock().expect("the journal is not poisoned").extend(events.into_iter().map(|e| Handled {
                        by,
                        aggregate_id: e.aggregate_id,
                        at,
                    }));
                    Ok(())
                }
            })
            .await;
    })
}

/// Waits until `by` handled `aggregate_id`, at most `limit`; when it did.
async fn handled_within(journal: &Journal, by: &str, aggregate_id: &str, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(handled) = journal
            .lock()
            .expect("the journal is not poisoned")
            .iter()
            .find(|h| h.by == by && h.aggregate_id == aggregate_id)
        {
            return Some(handled.at);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The application names of the sessions holding an advisory lock in this database.
async fn lock_holders(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("the lock holders")
}

/// Every event of the feed, in feed order.
async fn feed_order(pool: &PgPool) -> Vec<String> {
    let events =
        Feed::new(pool.clone(), "check").read_after(FeedPosition::default(), 10_000).await.expect("read the feed");
    events.into_iter().map(|e| e.aggregate_id).collect()
}

fn handled_by(journal: &Journal, by: &str) -> Vec<Handled> {
    journal.lock().expect("the journal is not poisoned").iter().filter(|h| h.by == by).cloned().collect()
}

#[tokio::test]
async fn a_leader_whose_connection_is_blackholed_gives_way_to_a_standby_and_stands_by_once_it_returns() {
    let (options, writer) = database().await;
    let proxy = proxy_to(&options).await;
    let behind_proxy = follower_pool(&options.clone().host("127.0.0.1").port(proxy.port()), BEHIND_PROXY).await;
    let direct = follower_pool(&options, DIRECT).await;
    let journal = Journal::default();
    let shutdown = CancellationToken::new();

    // The proxied follower leads; the direct one, started after, stands by.
    let leader = follow(behind_proxy.clone(), BEHIND_PROXY, &journal, &shutdown);
    append(&writer, "before-0").await;
    assert!(
        handled_within(&journal, BEHIND_PROXY, "before-0", Duration::from_secs(10)).await.is_some(),
        "the proxied follower leads"
    );
    let standby = follow(direct.clone(), DIRECT, &journal, &shutdown);
    tokio::time::sleep(Duration::from_secs(2)).await;
    append(&writer, "before-1").await;
    assert!(
        handled_within(&journal, BEHIND_PROXY, "before-1", Duration::from_secs(10)).await.is_some(),
        "it still leads"
    );
    assert!(handled_by(&journal, DIRECT).is_empty(), "the standby handles nothing while the leader leads");
    assert_eq!(lock_holders(&writer).await, [BEHIND_PROXY]);

    // The leader's network fails half-open; events go on being committed.
    proxy.blackhole(true);
    let blackholed_at = Instant::now();
    let during: Vec<String> = (0..10).map(|i| format!("during-{i}")).collect();
    for aggregate_id in &during {
        append(&writer, aggregate_id).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let taken_over_at =
        handled_within(&journal, DIRECT, "during-0", Duration::from_secs(45).saturating_sub(blackholed_at.elapsed()))
            .await
            .expect("the standby takes over within 45 s of the blackhole");
    let takeover = taken_over_at - blackholed_at;
    println!("takeover {:.1} s after the blackhole began", takeover.as_secs_f64());
    for aggregate_id in &during {
        assert!(
            handled_within(&journal, DIRECT, aggregate_id, Duration::from_secs(10)).await.is_some(),
            "the new leader handles {aggregate_id}"
        );
    }
    assert_eq!(
        lock_holders(&writer).await,
        [DIRECT],
        "the old leader's session ended on the server, and its lock with it"
    );

    // The network returns: the old leader finds the lock taken and stands by.
    proxy.blackhole(false);
    let returned_at = Instant::now();
    let mut reachable = false;
    for _ in 0..100 {
        if sqlx::query("SELECT 1").execute(&behind_proxy).await.is_ok() {
            reachable = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reachable, "the proxied pool reaches the server again");
    // Its attempts to lead run every second, each bounded by ten: give it two rounds.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after: Vec<String> = (0..5).map(|i| format!("after-{i}")).collect();
    for aggregate_id in &after {
        append(&writer, aggregate_id).await;
    }
    for aggregate_id in &after {
        assert!(
            handled_within(&journal, DIRECT, aggregate_id, Duration::from_secs(10)).await.is_some(),
            "the new leader handles {aggregate_id}"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lock_holders(&writer).await, [DIRECT], "one leader, the new one");

    // No two leaders: after the blackhole began, the old leader handled nothing
    // committed since (at most a batch in flight at that moment, all older).
    let old = handled_by(&journal, BEHIND_PROXY);
    let late: Vec<&Handled> = old.iter().filter(|h| h.at >= blackholed_at).collect();
    assert!(
        late.iter().all(|h| h.aggregate_id.starts_with("before-")),
        "the old leader handled events committed after it lost its network: {late:?}"
    );
    assert!(
        old.iter().all(|h| h.at < returned_at),
        "the old leader handled nothing after its network returned: {old:?}"
    );

    // Exactly in feed order: the new leader starts at most one batch back from where
    // the old one stopped (a batch whose position was not saved), and goes on
    // without a gap or a repeat.
    let order = feed_order(&writer).await;
    assert_eq!(order.len(), 2 + during.len() + after.len());
    let new: Vec<String> = handled_by(&journal, DIRECT).into_iter().map(|h| h.aggregate_id).collect();
    let first = order.iter().position(|id| *id == new[0]).expect("the new leader's first event is in the feed");
    assert_eq!(new, order[first..], "the new leader handles every event from its first on, once each, in feed order");
    let old_ids: Vec<String> = old.iter().map(|h| h.aggregate_id.clone()).collect();
    assert_eq!(old_ids, order[..old_ids.len()], "the old leader handled a prefix of the feed, in order");
    assert!(
        first <= old_ids.len(),
        "nothing skipped between the two leaders: the old one stopped at {}, the new one began at {first}",
        old_ids.len()
    );
    assert!(old_ids.len() - first <= 5, "at most one batch handled by both");

    shutdown.cancel();
    for follower in [leader, standby] {
        tokio::time::timeout(Duration::from_secs(30), follower)
            .await
            .expect("the follower stops")
            .expect("the follower ran");
    }
}

#[tokio::test]
async fn a_leader_waiting_on_its_batch_longer_than_the_servers_idle_timeout_keeps_its_lead() {
    let (options, writer) = database().await;
    let waiting = follower_pool(&options, WAITING).await;
    let standby_pool = follower_pool(&options, DIRECT).await;
    let journal = Journal::default();
    let shutdown = CancellationToken::new();

    // The leader's first batch takes 35 s (a relay waiting for its broker): longer
    // than the 25 s after which the server ends a silent leader session.
    append(&writer, "slow-0").await;
    let (started, mut batch_started) = tokio::sync::mpsc::unbounded_channel();
    let leader = tokio::spawn({
        let (journal, shutdown) = (journal.clone(), shutdown.clone());
        async move {
            Feed::new(waiting, FEED)
                .polling_every(Duration::from_millis(100))
                .follow(5, &shutdown, |events| {
                    let (journal, started) = (journal.clone(), started.clone());
                    async move {
                        let _ = started.send(());
                        tokio::time::sleep(Duration::from_secs(35)).await;
                        let at = Instant::now();
                        journal.lock().expect("the journal is not poisoned").extend(
                            events.into_iter().map(|e| Handled { by: WAITING, aggregate_id: e.aggregate_id, at }),
                        );
                        Ok(())
                    }
                })
                .await;
        }
    });
    tokio::time::timeout(Duration::from_secs(10), batch_started.recv()).await.expect("the leader starts its batch");
    let standby = follow(standby_pool, DIRECT, &journal, &shutdown);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(lock_holders(&writer).await, [WAITING], "the waiting leader keeps its session and its lock");
    assert!(handled_within(&journal, WAITING, "slow-0", Duration::from_secs(10)).await.is_some(), "the batch ends");
    // Its position was saved on the same session: the standby never handles slow-0.
    append(&writer, "slow-1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        handled_by(&journal, DIRECT).is_empty(),
        "the standby took nothing over: {:?}",
        handled_by(&journal, DIRECT)
    );
    assert_eq!(lock_holders(&writer).await, [WAITING]);

    shutdown.cancel();
    for follower in [leader, standby] {
        tokio::time::timeout(Duration::from_secs(60), follower)
            .await
            .expect("the follower stops")
            .expect("the follower ran");
    }
}

#[tokio::test]
async fn a_leader_whose_connection_is_cut_leads_again_from_its_saved_position() {
    let (options, writer) = database().await;
    let proxy = proxy_to(&options).await;
    let behind_proxy = follower_pool(&options.clone().host("127.0.0.1").port(proxy.port()), BEHIND_PROXY).await;
    let journal = Journal::default();
    let shutdown = CancellationToken::new();
    let follower = follow(behind_proxy, BEHIND_PROXY, &journal, &shutdown);
    append(&writer, "cut-0").await;
    assert!(handled_within(&journal, BEHIND_PROXY, "cut-0", Duration::from_secs(10)).await.is_some(), "it leads");

    // Its position saved first, so that the cut costs no batch handled twice.
    assert!(
        support::saved_within(&writer, FEED, Duration::from_secs(5), |p| p != FeedPosition::default()).await,
        "its position saved"
    );
    proxy.cut();
    append(&writer, "cut-1").await;
    let cut_at = Instant::now();
    let handled_at = handled_within(&journal, BEHIND_PROXY, "cut-1", Duration::from_secs(15))
        .await
        .expect("it leads again soon after the cut");
    println!("led again {:.1} s after the cut", (handled_at - cut_at).as_secs_f64());
    let ids: Vec<String> = handled_by(&journal, BEHIND_PROXY).into_iter().map(|h| h.aggregate_id).collect();
    assert_eq!(ids, ["cut-0", "cut-1"], "resumed after the saved position: nothing skipped, nothing repeated");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("the follower stops")
        .expect("the follower ran");
}
