//! An order whose placement an older release stored as `OrderPlaced` 1.0, against a
//! real PostgreSQL: it loads, decides new commands as any order does, and its view —
//! kept inline, folded from history, caught up from the feed, or rebuilt offline — is
//! the view of the same order placed today (2.0). Stored events are never rewritten:
//! the row stays 1.0.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::order::{
    ItemOutcome, ItemUpdate, Order, OrderCommand, OrderError, OrderLine, PlaceOrder, RecordItemOutcome,
    RejectionReason, TargetStatus, UpdateOrder,
};
use domain::{OrderId, ProductId, Quantity, UserId};
use eventstore::{AggregateStore, Committed, EventMetadata, ExecuteError};
use projections::rebuild;
use projections::{AsOf, OrderView, OrderViews, Projector, View, view_as_of};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn pool() -> PgPool {
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, "oms", 4, &migrations::OMS).await.expect("migrated")
}

/// The store as the OMS wires it: upcasters, and the order view in every commit.
fn store(pool: &PgPool) -> AggregateStore<Order> {
    AggregateStore::new(pool.clone())
        .with_upcasters(domain::order::upcasters())
        .with_projection(Projector::<OrderViews>::live())
}

/// Minute `minute` of a fixed morning: both orders' events happen at the same times.
fn at(minute: u32) -> DateTime<Utc> {
    format!("2024-05-01T10:{minute:02}:00Z").parse().expect("a time")
}

fn metadata(minute: u32) -> EventMetadata {
    EventMetadata {
        correlation_id: "corr".into(),
        causation_id: format!("cause-{minute}"),
        actor: "test".into(),
        occurred_at: at(minute),
        trace_headers: Vec::new(),
        idempotency_key: None,
    }
}

fn product(id: &str) -> ProductId {
    ProductId::parse(id).expect("a product id")
}

fn units(n: u32) -> Quantity {
    Quantity::new(n.into()).expect("a quantity")
}

fn place(key: Option<&str>, lines: &[(&str, u32)]) -> OrderCommand {
    OrderCommand::PlaceOrder(PlaceOrder {
        user_id: UserId::parse("alice").expect("a user id"),
        items: lines.iter().map(|(id, n)| OrderLine { product_id: product(id), quantity: units(*n) }).collect(),
        idempotency_key: key.map(str::to_owned),
    })
}

fn outcome(id: &str, revision: u64, outcome: ItemOutcome) -> OrderCommand {
    OrderCommand::RecordItemOutcome(RecordItemOutcome { product_id: product(id), revision, outcome })
}

fn add_item(id: &str, n: u32) -> OrderCommand {
    OrderCommand::UpdateOrder(UpdateOrder {
        items: vec![ItemUpdate::SetQuantity { product_id: product(id), quantity: units(n) }],
        status: None,
    })
}

fn pay() -> OrderCommand {
    OrderCommand::UpdateOrder(UpdateOrder { items: vec![], status: Some(TargetStatus::Paid) })
}

/// Inserts one event row exactly as a release before OrderPlaced 2.0 wrote it: every
/// order event at 1.0, metadata as `EventMetadata::to_map` writes it.
async fn insert_as_the_old_release(
    pool: &PgPool,
    order_id: OrderId,
    sequence: i64,
    event_type: &str,
    payload: Value,
    minute: u32,
) {
    let metadata = json!({
        "correlation_id": "corr", "causation_id": format!("cause-{minute}"), "actor": "test",
        "occurred_at": format!("2024-05-01T10:{minute:02}:00.000000Z"),
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Order', $1, $2, $3, '1.0', $4, $5)",
    )
    .bind(order_id.to_string())
    .bind(sequence)
    .bind(event_type)
    .bind(payload)
    .bind(metadata)
    .execute(pool)
    .await
    .expect("inserting a stored event");
}

/// Order `legacy` as the old release left it: 2 mugs (executed) and 1 tea (rejected),
/// every event stored as 1.0, and no view row yet.
async fn given_an_order_stored_by_the_old_release(pool: &PgPool, legacy: OrderId) {
    let placed = json!({"OrderPlaced": {"userId": "alice", "items": [{"productId": "mug", "quantity": 2}, {"productId": "tea", "quantity": 1}]}});
    insert_as_the_old_release(pool, legacy, 1, "OrderPlaced", placed, 1).await;
    insert_as_the_old_release(
        pool,
        legacy,
        2,
        "ItemExecuted",
        json!({"ItemExecuted": {"productId": "mug", "quantity": 2, "revision": 1}}),
        2,
    )
    .await;
    let rejected =
        json!({"ItemRejected": {"productId": "tea", "quantity": 1, "revision": 1, "reason": "INSUFFICIENT_STOCK"}});
    insert_as_the_old_release(pool, legacy, 3, "ItemRejected", rejected, 3).await;
}

/// The same order placed today (OrderPlaced 2.0, under a key), at the same times.
async fn given_the_same_order_placed_today(store: &AggregateStore<Order>, twin: OrderId) {
    let id = twin.to_string();
    store.execute(&id, place(Some("checkout-42"), &[("mug", 2), ("tea", 1)]), &metadata(1)).await.expect("placed");
    store.execute(&id, outcome("mug", 1, ItemOutcome::Executed), &metadata(2)).await.expect("mug executed");
    store
        .execute(&id, outcome("tea", 1, ItemOutcome::Rejected(RejectionReason::InsufficientStock)), &metadata(3))
        .await
        .expect("tea rejected");
}

async fn stored_versions(pool: &PgPool, order_id: OrderId) -> Vec<(String, String)> {
    sqlx::query_as("SELECT event_type, event_version FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(order_id.to_string())
        .fetch_all(pool)
        .await
        .expect("reading versions")
}

/// `view` under `order_id`: the only field in which twins differ.
fn renamed(view: OrderView, order_id: OrderId) -> OrderView {
    OrderView { order_id, ..view }
}

fn payloads(committed: &Committed<Order>) -> Vec<domain::order::OrderEvent> {
    committed.events.iter().map(|e| e.payload.clone()).collect()
}

/// A database holding one order twice: placed by the old release (`legacy`, 1.0) and
/// the same placed today (`twin`, 2.0).
struct Twins {
    pool: PgPool,
    store: AggregateStore<Order>,
    views: OrderViews,
    legacy: OrderId,
    twin: OrderId,
}

async fn given_twin_orders() -> Twins {
    let pool = pool().await;
    let store = store(&pool);
    let views = OrderViews::new(pool.clone());
    let (legacy, twin) = (OrderId::generate(), OrderId::generate());
    given_an_order_stored_by_the_old_release(&pool, legacy).await;
    given_the_same_order_placed_today(&store, twin).await;
    Twins { pool, store, views, legacy, twin }
}

#[tokio::test]
async fn an_order_placed_as_1_0_loads_decides_and_projects_like_the_same_order_placed_as_2_0() {
    let Twins { pool, store, views, legacy, twin } = given_twin_orders().await;

    let (old, old_version) = store.load(&legacy.to_string()).await.expect("the 1.0 order loads");
    let (new, new_version) = store.load(&twin.to_string()).await.expect("the 2.0 order loads");
    assert_eq!((old_version, new_version), (3, 3), "both histories are read whole");
    assert_eq!(old, new, "the 1.0 history folds to the same aggregate as the 2.0 one");

    let retried = store
        .execute(&legacy.to_string(), place(Some("checkout-42"), &[("mug", 2), ("tea", 1)]), &metadata(4))
        .await
        .expect("a retry");
    assert!(
        retried.events.is_empty() && retried.version == 3,
        "a retry of the 1.0 placement under its key decides nothing: {retried:?}"
    );
    let misused = store.execute(&legacy.to_string(), place(Some("checkout-42"), &[("mug", 5)]), &metadata(4)).await;
    assert!(
        matches!(misused, Err(ExecuteError::Rejected(OrderError::PlacedWithOtherContent))),
        "other content is refused: {misused:?}"
    );
    for (minute, command) in [(5, add_item("cup", 3)), (6, outcome("cup", 4, ItemOutcome::Executed)), (7, pay())] {
        let old = store
            .execute(&legacy.to_string(), command.clone(), &metadata(minute))
            .await
            .expect("the 1.0 order accepts it");
        let new = store
            .execute(&twin.to_string(), command.clone(), &metadata(minute))
            .await
            .expect("the 2.0 order accepts it");
        assert!(!old.events.is_empty(), "{command:?} decides something");
        assert_eq!(
            (payloads(&old), old.version),
            (payloads(&new), new.version),
            "both decide the same for {command:?}"
        );
    }

    // The legacy order had no view row: its first write refolded it from its whole
    // history, the 1.0 placement included.
    let old_view = views.get(legacy).await.expect("read").expect("the 1.0 order has a view");
    let new_view = views.get(twin).await.expect("read").expect("the 2.0 order has a view");
    assert_eq!(old_view, renamed(new_view, legacy), "the views are equal but for the id");
    assert_eq!((old_view.version, old_view.status.as_str(), old_view.created_at), (6, "PAID", at(1)), "{old_view:?}");

    let history = store.load_events(&legacy.to_string()).await.expect("the history reads");
    let rebuilt = OrderView::fold(&history).expect("the history folds");
    assert_eq!(rebuilt, Some(old_view), "rebuilding from the events gives the live view");
    for version in 1..=6 {
        let old = view_as_of::<OrderView>(&store, &legacy.to_string(), AsOf::Version(version)).await.expect("folds");
        let new = view_as_of::<OrderView>(&store, &twin.to_string(), AsOf::Version(version)).await.expect("folds");
        assert_eq!(old, new.map(|v| renamed(v, legacy)), "as of version {version}, the 1.0 order is its 2.0 twin");
    }

    let legacy_versions = stored_versions(&pool, legacy).await;
    assert_eq!(
        legacy_versions[0],
        ("OrderPlaced".to_owned(), "1.0".to_owned()),
        "the 1.0 event is history: read as 2.0, never rewritten"
    );
    let current = |event_type: &str| if event_type == "OrderStatusChanged" { "2.0" } else { "1.0" };
    assert!(
        legacy_versions[1..].iter().all(|(t, v)| v == current(t)),
        "the events written since are at their current version: {legacy_versions:?}"
    );
    assert_eq!(
        stored_versions(&pool, twin).await[0],
        ("OrderPlaced".to_owned(), "2.0".to_owned()),
        "placed today, as 2.0"
    );
}

#[tokio::test]
async fn the_feed_catch_up_builds_the_view_of_an_order_placed_as_1_0() {
    let Twins { pool, store, views, legacy, twin } = given_twin_orders().await;
    assert!(views.get(legacy).await.expect("read").is_none(), "nothing has projected the 1.0 order yet");

    let shutdown = CancellationToken::new();
    let follower = tokio::spawn(projections::catch_up::follow_feed(
        pool.clone(),
        "versioning-test",
        store.events().clone(),
        Projector::<OrderViews>::live(),
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let caught_up = loop {
        match views.get(legacy).await.expect("read") {
            Some(view) if view.version == 3 => break view,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("the catch-up did not build the 1.0 order's view within 20 s")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    shutdown.cancel();
    follower.await.expect("the follower stops");

    let twin_view = views.get(twin).await.expect("read").expect("the 2.0 order's view");
    assert_eq!(
        caught_up,
        renamed(twin_view, legacy),
        "caught up from the feed, the 1.0 order's view is its 2.0 twin's"
    );
    assert_eq!(caught_up.status.as_str(), "PARTIALLY_EXECUTED");
}

#[tokio::test]
async fn an_offline_rebuild_and_its_verification_read_a_1_0_history() {
    let Twins { pool, store, views, legacy, twin } = given_twin_orders().await;

    let rebuilt = rebuild::rebuild::<OrderViews>(&pool, store.events(), |_| {})
        .await
        .expect("the rebuild reads the 1.0 placement");
    assert_eq!(rebuilt.events, 6, "both orders' events folded");
    let legacy_view = views.get(legacy).await.expect("read").expect("the rebuilt model holds the 1.0 order");
    let twin_view = views.get(twin).await.expect("read").expect("and the 2.0 one");
    assert_eq!(legacy_view, renamed(twin_view, legacy), "rebuilt, the 1.0 order's view is its 2.0 twin's");
    let differences = rebuild::verify::<OrderViews>(&pool, store.events(), |_| {})
        .await
        .expect("the verification reads the 1.0 placement");
    assert!(differences.is_empty(), "a fresh fold agrees with the rebuilt model: {differences:?}");
}

#[tokio::test]
async fn a_store_without_the_upcasters_refuses_a_1_0_placement_rather_than_misread_it() {
    let pool = pool().await;
    let legacy = OrderId::generate();
    given_an_order_stored_by_the_old_release(&pool, legacy).await;
    let unwired = AggregateStore::<Order>::new(pool.clone());
    let error = unwired.load(&legacy.to_string()).await.expect_err("1.0 does not decode as 2.0");
    assert!(error.to_string().contains("idempotencyKey"), "the error names what is missing: {error}");
}
