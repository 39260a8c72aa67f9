//! Orders under load while services stop, crash or scale, and what must hold after:
//! paced clients that retry with their idempotency key until an OMS answers, and the
//! checks that no order was lost or processed twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging::KafkaSettings;
use sqlx::PgPool;
use system_tests::{Api, Deployment, broker};

use crate::invariants::{assert_invariants, wait_until_resolved};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long one order's client keeps retrying before the test gives up on it.
pub const CLIENT_PATIENCE: Duration = Duration::from_secs(60);

/// One POST attempt as the client saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The order's idempotency key.
    pub key: String,
    /// When it was sent.
    pub at: Instant,
    /// The status, or none when no answer came (connection refused or reset).
    pub status: Option<u16>,
    /// The order id answered.
    pub order_id: Option<String>,
    /// The body, or the error.
    pub body: String,
}

/// The attempts of every client, in the order they ended.
type AttemptLog = Arc<Mutex<Vec<Attempt>>>;

/// The lines of order `i`: the hot product, one of five others, and now and then an
/// unknown product.
pub fn lines(i: usize) -> Vec<(String, u32)> {
    let mut lines = vec![("hot".to_owned(), 1 + (i % 2) as u32), (format!("p-{}", i % 5), 1 + (i % 3) as u32)];
    if i.is_multiple_of(20) {
        lines.push(("ghost".to_owned(), 1));
    }
    lines
}

/// The user of order `i`.
pub fn user(i: usize) -> String {
    format!("u-{}", i % 25)
}

/// The idempotency key of order `i` of a run named `run`.
pub fn key(run: &str, i: usize) -> String {
    format!("{run}-order-{i}")
}

/// Adds the products [`lines`] order: `hot` with `hot_stock` units, five others with
/// plenty.
pub async fn add_products(api: &Api, hot_stock: u32) {
    api.add_product("hot", hot_stock, 20).await.expect("adding hot");
    for p in 0..5 {
        api.add_product(&format!("p-{p}"), 400, 10).await.expect("adding a product");
    }
}

/// Places order `i` with its idempotency key, retrying (same key) until a 2xx or a 4xx.
async fn place(api: &Api, run: &str, i: usize, log: &Mutex<Vec<Attempt>>) {
    let key = key(run, i);
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

/// Clients placing the orders of a run in the background, each retrying with its key
/// until an OMS answers.
pub struct Clients {
    /// When the first client started.
    pub started: Instant,
    orders: usize,
    log: AttemptLog,
    placing: JoinHandle<()>,
}

impl Clients {
    /// Adds the products the orders need, `hot` with `hot_stock` units (see
    /// [`add_products`]), then starts `orders` clients of a run named `run`, one every
    /// `pace`, client `i` placing order `i` through `apis[i % apis.len()]`.
    pub async fn start(apis: Vec<Api>, hot_stock: u32, run: &str, orders: usize, pace: Duration) -> Self {
        add_products(&apis[0], hot_stock).await;
        let log = AttemptLog::default();
        let started = Instant::now();
        let placing = {
            let (run, log) = (run.to_owned(), log.clone());
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(pace);
                let mut clients = Vec::new();
                for i in 0..orders {
                    ticker.tick().await;
                    let (api, log, run) = (apis[i % apis.len()].clone(), log.clone(), run.clone());
                    clients.push(tokio::spawn(async move { place(&api, &run, i, &log).await }));
                }
                for client in clients {
                    client.await.expect("client task");
                }
            })
        };
        Self { started, orders, log, placing }
    }

    /// Waits until every client has ended (each gives up after [`CLIENT_PATIENCE`]);
    /// their attempts, in the order they ended.
    pub async fn finish(self) -> Vec<Attempt> {
        tokio::time::timeout(CLIENT_PATIENCE + Duration::from_secs(30), self.placing)
            .await
            .expect("placing orders ends")
            .expect("placing task");
        let attempts = self.log.lock().expect("attempt log").clone();
        eprintln!("placed {} orders with {} attempts in {:?}", self.orders, attempts.len(), self.started.elapsed());
        attempts
    }
}

/// The order each key was accepted as, checking that every key of `orders` ended
/// with a 2xx, that no POST was refused, and that all answers for a key name one
/// order and distinct keys distinct orders.
pub fn accepted_orders(attempts: &[Attempt], orders: usize) -> HashMap<String, String> {
    let mut accepted: HashMap<String, String> = HashMap::new();
    for attempt in attempts {
        match attempt.status {
            Some(status) if (200..300).contains(&status) => {
                let order_id =
                    attempt.order_id.clone().unwrap_or_else(|| panic!("a 2xx without an order: {attempt:?}"));
                let previous = accepted.insert(attempt.key.clone(), order_id.clone());
                assert!(previous.is_none_or(|p| p == order_id), "one key, one order: {attempt:?}");
            }
            Some(status) if status < 500 => panic!("a POST of {} refused with {status}: {}", attempt.key, attempt.body),
            _ => {}
        }
    }
    assert_eq!(accepted.len(), orders, "every order was accepted in the end");
    let distinct: BTreeSet<&String> = accepted.values().collect();
    assert_eq!(distinct.len(), orders, "distinct keys, distinct orders");
    accepted
}

/// Checks that nothing was processed twice or lost, for orders placed and never
/// changed: one `OrderPlaced` per order; for every item, exactly one reservation
/// outcome on its product (reserved or rejected) and exactly one outcome on its order.
pub async fn assert_each_order_placed_and_served_once(oms: &PgPool, inventory: &PgPool, orders: usize) {
    let placements: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, count(*) FROM events WHERE event_type = 'OrderPlaced' GROUP BY aggregate_id",
    )
    .fetch_all(oms)
    .await
    .expect("placements");
    assert_eq!(placements.len(), orders, "one placement per key in the event store");
    let doubled: Vec<_> = placements.iter().filter(|(_, n)| *n > 1).collect();
    assert!(doubled.is_empty(), "no order placed twice: {doubled:?}");

    let items: BTreeSet<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, item->>'productId' FROM events, jsonb_array_elements(payload->'OrderPlaced'->'items') AS item
          WHERE event_type = 'OrderPlaced'",
    )
    .fetch_all(oms)
    .await
    .expect("placed items")
    .into_iter()
    .collect();
    let reservations: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT payload->event_type->>'orderId', aggregate_id, count(*) FROM events
          WHERE event_type IN ('StockReserved', 'ReservationRejected') GROUP BY 1, 2",
    )
    .fetch_all(inventory)
    .await
    .expect("reservation outcomes");
    let item_outcomes: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, payload->event_type->>'productId', count(*) FROM events
          WHERE event_type IN ('ItemExecuted', 'ItemRejected') GROUP BY 1, 2",
    )
    .fetch_all(oms)
    .await
    .expect("item outcomes");
    for (label, outcomes) in
        [("reservation outcome on the product", &reservations), ("outcome on the order", &item_outcomes)]
    {
        let doubled: Vec<_> = outcomes.iter().filter(|(.., n)| *n != 1).collect();
        assert!(doubled.is_empty(), "each item has one {label}: {doubled:?}");
        let served: BTreeSet<(String, String)> =
            outcomes.iter().map(|(order, product, _)| (order.clone(), product.clone())).collect();
        let missing: Vec<_> = items.difference(&served).collect();
        assert!(missing.is_empty(), "{} of {} items have no {label}: {missing:?}", missing.len(), items.len());
        assert_eq!(served.len(), items.len(), "no {label} for an item never placed");
    }
}

/// Event ids of `topic`'s messages.
async fn published_event_ids(kafka: &KafkaSettings, topic: &str) -> BTreeSet<String> {
    let messages = broker::read_topic_async(kafka, topic, Duration::from_secs(30)).await.expect("reading a topic");
    messages.iter().filter_map(|m| m.json()).filter_map(|body| body["eventId"].as_str().map(str::to_owned)).collect()
}

/// Checks invariant 3's "every committed event reaches Kafka": each stored event that
/// its service publishes is on its topic (perhaps more than once).
async fn assert_every_event_published(kafka: &KafkaSettings, oms: &PgPool, inventory: &PgPool) {
    let topics = &kafka.topics;
    let on_order_events = published_event_ids(kafka, &topics.order_events).await;
    let stored: Vec<(uuid::Uuid,)> = sqlx::query_as("SELECT event_id FROM events WHERE aggregate_type = 'Order'")
        .fetch_all(oms)
        .await
        .expect("order events");
    let missing: Vec<_> = stored.iter().filter(|(id,)| !on_order_events.contains(&id.to_string())).collect();
    assert!(
        missing.is_empty(),
        "{} of {} order events never reached {}: {missing:?}",
        missing.len(),
        stored.len(),
        topics.order_events
    );

    let on_outcomes = published_event_ids(kafka, &topics.order_outcomes).await;
    let on_alerts = published_event_ids(kafka, &topics.stock_alerts).await;
    let stored: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT event_id, event_type FROM events WHERE aggregate_type = 'Product'
            AND event_type IN ('StockReserved', 'ReservationReduced', 'ReservationRejected', 'LowStockReached', 'OutOfStock', 'BackInStock')",
    )
    .fetch_all(inventory)
    .await
    .expect("product events");
    let missing: Vec<_> = stored
        .iter()
        .filter(|(id, event_type)| {
            let topic = if event_type.starts_with("Stock") || event_type.starts_with("Reservation") {
                &on_outcomes
            } else {
                &on_alerts
            };
            !topic.contains(&id.to_string())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} product events never reached their topic: {missing:?}",
        missing.len(),
        stored.len()
    );
}

/// Checks that every accepted order is one `GET` returns, as placed, and that
/// retrying its key once more answers the same order.
pub async fn assert_accepted_orders_are_served(
    system: &impl Deployment,
    run: &str,
    accepted: &HashMap<String, String>,
) {
    use futures::StreamExt;
    let api = system.api();
    futures::stream::iter(0..accepted.len())
        .for_each_concurrent(16, |i| async move {
            let key = key(run, i);
            let order_id = &accepted[&key];
            let order = match api.order(order_id).await {
                Ok(order) => order,
                Err(error) => {
                    let stored = what_the_store_holds(system.oms_pool(), order_id).await;
                    panic!("GET of accepted order {order_id} ({key}): {error:#}; the OMS store holds {stored}")
                }
            };
            assert_eq!(order["userId"], user(i).as_str(), "{order}");
            let products: BTreeSet<&str> = order["orderItems"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|item| item["productId"].as_str())
                .collect();
            let expected = lines(i);
            assert_eq!(products, expected.iter().map(|(p, _)| p.as_str()).collect(), "{order}");
            let expected: Vec<(&str, u32)> = expected.iter().map(|(p, q)| (p.as_str(), *q)).collect();
            let (status, body) = api.post_order_with_key(&user(i), &expected, &key).await.expect("retrying a POST");
            assert!(status.is_success(), "a retry is answered: {status} {body}");
            assert_eq!(body["data"]["orderId"].as_str(), Some(order_id.as_str()), "a retry answers the same order");
        })
        .await;
}

/// What the OMS schema holds of `order_id` (its events, its view row), for a failure's
/// message: it tells a lost commit from a view that missed one.
async fn what_the_store_holds(oms: &PgPool, order_id: &str) -> String {
    let events: Result<Vec<(i64, String, String)>, _> = sqlx::query_as(
        "SELECT sequence, event_type, transaction_id::text FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(order_id)
    .fetch_all(oms)
    .await;
    let view: Result<Option<(String, i64)>, _> =
        sqlx::query_as("SELECT status, version FROM order_view WHERE order_id::text = $1")
            .bind(order_id)
            .fetch_optional(oms)
            .await;
    format!("events (sequence, type, transaction) {events:?}; view row (status, version) {view:?}")
}

/// What must hold after a run of clients named `run` whose orders were `accepted`:
/// every order resolves within `timeout`, every invariant holds, every accepted order
/// is served as placed, none was lost or processed twice, and every event that is
/// published reached its topic.
pub async fn assert_nothing_lost_or_doubled(
    system: &impl Deployment,
    kafka: &KafkaSettings,
    run: &str,
    accepted: &HashMap<String, String>,
    timeout: Duration,
) {
    let started = Instant::now();
    wait_until_resolved(system, timeout).await;
    eprintln!("every order resolved {:?} after the last client", started.elapsed());
    assert_invariants(system).await;
    assert_accepted_orders_are_served(system, run, accepted).await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM order_view")
        .fetch_one(system.oms_pool())
        .await
        .expect("counting orders");
    assert_eq!(orders, accepted.len() as i64, "one order per idempotency key in the view");
    assert_each_order_placed_and_served_once(system.oms_pool(), system.inventory_pool(), accepted.len()).await;
    assert_every_event_published(kafka, system.oms_pool(), system.inventory_pool()).await;
}
