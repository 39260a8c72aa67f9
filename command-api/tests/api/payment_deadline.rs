//! The payment deadline: a resolved order not paid in time is canceled, its items
//! `CANCELED` for `PAYMENT_TIMEOUT`; once, with two instances; after a restart; never
//! once paid; never with the deadline off; counted from the order's resolution; a
//! backlog larger than a batch in one pass; and a payment racing it has one winner.
//! Outcomes are recorded through the application service (no inventory service
//! here); passes are driven by hand, each "instance" with a pool of its own as an OMS
//! process has, except where the service's own loop is under test.

use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use command_api::orders::Orders;
use command_api::payment_deadline::{claim_due, expire_due};
use domain::order::{ItemOutcome, OrderCommand, RecordItemOutcome, RejectionReason};
use domain::{OrderId, ProductId};
use eventstore::{Command, EventMetadata};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, order_id, spawn_app, spawn_app_with};

const DEADLINE: Duration = Duration::from_millis(300);

/// What a payment that came too late, or lost the race with the deadline, is told.
const TOO_LATE: &str =
    "the order was canceled because it was not paid before its payment deadline: it cannot go from CANCELED to PAID";

/// An OMS instance as the deadline's passes see it: a pool of its own on the app's
/// database, and orders stored through it.
struct Instance {
    pool: PgPool,
    orders: Orders,
}

async fn instance(app: &TestApp) -> Instance {
    let pool = migrations::connect_and_migrate(&app.database_url, "oms", 5, &migrations::OMS)
        .await
        .expect("an instance's pool");
    Instance { orders: Orders::new(pool.clone()), pool }
}

impl Instance {
    async fn pass(&self, timeout: Duration) -> usize {
        expire_due(&self.pool, &self.orders, timeout).await.expect("a pass")
    }
}

fn outcome(order_id: OrderId, product: &str, outcome: ItemOutcome) -> Command<domain::order::Order> {
    Command {
        aggregate_id: order_id.to_string(),
        command: OrderCommand::RecordItemOutcome(RecordItemOutcome {
            product_id: ProductId::parse(product).expect("a product id"),
            revision: 1,
            outcome,
        }),
        metadata: EventMetadata::new("test", "test", "test"),
    }
}

/// Records the inventory service's answers for the items placed with the order.
async fn resolve(app: &TestApp, order_id: &str, outcomes: &[(&str, ItemOutcome)]) {
    let orders = Orders::new(app.pool.clone());
    let id: OrderId = order_id.parse().expect("an order id");
    let commands: Vec<_> = outcomes.iter().map(|(product, answer)| outcome(id, product, *answer)).collect();
    for result in orders.execute_all(&commands).await.expect("outcomes recorded") {
        result.expect("an outcome accepted");
    }
}

/// Places `count` orders of one mug each and records them executed; their ids.
async fn executed_orders(app: &TestApp, count: usize) -> Vec<OrderId> {
    let placing = (0..count).map(|n| async move { app.place_order(&format!("user-{n}"), &[("mug", 1)]).await });
    let ids: Vec<OrderId> =
        futures::future::join_all(placing).await.iter().map(|o| order_id(o).parse().expect("an id")).collect();
    let commands: Vec<_> = ids.iter().map(|id| outcome(*id, "mug", ItemOutcome::Executed)).collect();
    let orders = Orders::new(app.pool.clone());
    for chunk in commands.chunks(100) {
        for result in orders.execute_all(chunk).await.expect("outcomes recorded") {
            result.expect("an outcome accepted");
        }
    }
    ids
}

/// How many of `ids` are canceled, and how many `OrderCanceled` events they have.
async fn canceled(app: &TestApp, ids: &[OrderId]) -> (i64, i64) {
    let ids: Vec<uuid::Uuid> = ids.iter().map(OrderId::as_uuid).collect();
    let orders: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_view WHERE order_id = ANY($1) AND status = 'CANCELED'")
            .bind(&ids)
            .fetch_one(&app.pool)
            .await
            .expect("counting canceled orders");
    let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Order' AND aggregate_id = ANY($1) AND event_type = 'OrderCanceled'",
    )
    .bind(&texts)
    .fetch_one(&app.pool)
    .await
    .expect("counting cancellations");
    (orders, events)
}

async fn executed_order(app: &TestApp) -> String {
    let id = order_id(&app.place_order("alice", &[("mug", 2), ("tea", 1)]).await);
    resolve(app, &id, &[("mug", ItemOutcome::Executed), ("tea", ItemOutcome::Executed)]).await;
    assert_eq!(app.get_order(&id).await.data(StatusCode::OK)["status"], "EXECUTED");
    id
}

fn expired_items() -> Value {
    json!([
        {"productId": "mug", "quantity": 2, "status": "CANCELED", "reason": "PAYMENT_TIMEOUT"},
        {"productId": "tea", "quantity": 1, "status": "CANCELED", "reason": "PAYMENT_TIMEOUT"},
    ])
}

/// The events of the order, as `/events` lists them: (type, payload).
async fn events(app: &TestApp, order_id: &str) -> Vec<(String, Value)> {
    let answer = app.events(order_id).await;
    answer
        .data(StatusCode::OK)
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| (e["eventType"].as_str().expect("a type").to_owned(), e["payload"].clone()))
        .collect()
}

#[tokio::test]
async fn the_service_cancels_a_resolved_order_not_paid_in_time() {
    let app = spawn_app_with(|settings| settings.payment_timeout_ms = DEADLINE.as_millis() as u64).await;
    let executed = executed_order(&app).await;
    let partial = order_id(&app.place_order("bob", &[("mug", 1), ("cup", 3)]).await);
    resolve(
        &app,
        &partial,
        &[("mug", ItemOutcome::Executed), ("cup", ItemOutcome::Rejected(RejectionReason::InsufficientStock))],
    )
    .await;
    let pending = order_id(&app.place_order("carol", &[("mug", 1)]).await);

    let started = Instant::now();
    loop {
        let order = app.get_order(&executed).await.data(StatusCode::OK).clone();
        if order["status"] == "CANCELED" {
            assert_eq!(order["orderItems"], expired_items());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not canceled 10 s after a 300 ms deadline: {order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Late by at most a pass, never early.
    let partial_order = loop {
        let order = app.get_order(&partial).await.data(StatusCode::OK).clone();
        if order["status"] == "CANCELED" || started.elapsed() > Duration::from_secs(10) {
            break order;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        partial_order["orderItems"],
        json!([
            {"productId": "mug", "quantity": 1, "status": "CANCELED", "reason": "PAYMENT_TIMEOUT"},
            {"productId": "cup", "quantity": 3, "status": "CANCELED", "reason": "INSUFFICIENT_STOCK"},
        ]),
        "a partially executed order expires too; the rejected item keeps its reason"
    );
    let canceled = events(&app, &executed).await.pop().expect("events");
    assert_eq!(
        canceled,
        ("OrderCanceled".to_owned(), json!({"items": ["mug", "tea"], "reason": "PAYMENT_TIMEOUT"})),
        "downstream consumers can tell a payment timeout from a customer's cancellation"
    );
    assert_eq!(app.get_order(&pending).await.data(StatusCode::OK)["status"], "PENDING", "a pending order waits");

    let paying = app.put_order(&executed, &json!({"status": "PAID"})).await;
    let message = paying.error(StatusCode::CONFLICT, "paying after the deadline");
    assert_eq!(message, TOO_LATE, "the client learns why the order can no longer be paid");

    let metrics =
        app.client.get(format!("{}/metrics", app.address)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.lines().any(|l| l == "payment_timeouts_total 2"), "counted: {metrics}");
}

#[tokio::test]
async fn two_instances_cancel_an_unpaid_order_once_and_never_a_paid_one() {
    let app = spawn_app().await;
    let unpaid = executed_order(&app).await;
    let paid = executed_order(&app).await;
    app.put_order(&paid, &json!({"status": "PAID"})).await.data(StatusCode::OK);
    let (one, other) = (instance(&app).await, instance(&app).await);

    // An hour's deadline is not yet due for orders placed a moment ago.
    let hour = Duration::from_secs(3600);
    assert_eq!(one.pass(hour).await, 0, "not yet due");
    tokio::time::sleep(DEADLINE + Duration::from_millis(100)).await;
    let (a, b) = tokio::join!(one.pass(DEADLINE), other.pass(DEADLINE));
    assert_eq!(a + b, 1, "one instance cancels, the other finds it claimed or moved on");
    assert_eq!(other.pass(DEADLINE).await, 0, "and never again");

    let types: Vec<String> = events(&app, &unpaid).await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["OrderPlaced", "ItemExecuted", "ItemExecuted", "OrderCanceled"]);
    assert_eq!(app.get_order(&paid).await.data(StatusCode::OK)["status"], "PAID", "a paid order never expires");
}

#[tokio::test]
async fn the_deadline_outlives_the_service_that_saw_the_order_resolve() {
    // Resolved while an OMS with the deadline off ran; that OMS goes away.
    let first = spawn_app_with(|settings| settings.payment_timeout_ms = 0).await;
    let id = executed_order(&first).await;
    let database = first.database_url.clone();
    drop(first);
    tokio::time::sleep(DEADLINE).await;

    let restarted = spawn_app_with(|settings| {
        settings.service.database.url = database.parse().expect("a URL");
        settings.payment_timeout_ms = DEADLINE.as_millis() as u64;
    })
    .await;
    let started = Instant::now();
    while restarted.get_order(&id).await.data(StatusCode::OK)["status"] != "CANCELED" {
        assert!(started.elapsed() < Duration::from_secs(10), "the restarted OMS did not expire the order");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(restarted.get_order(&id).await.data(StatusCode::OK)["orderItems"], expired_items());
}

#[tokio::test]
async fn a_payment_racing_the_deadline_has_one_winner_and_a_clear_answer() {
    let app = spawn_app().await;
    let deadline = instance(&app).await;
    let mut outcomes = (0, 0);
    for _ in 0..8 {
        let id = executed_order(&app).await;
        tokio::time::sleep(DEADLINE + Duration::from_millis(20)).await;
        let pay = json!({"status": "PAID"});
        let (paying, expired) = tokio::join!(app.put_order(&id, &pay), deadline.pass(DEADLINE));
        let order = app.get_order(&id).await.data(StatusCode::OK).clone();
        let types: Vec<String> = events(&app, &id).await.into_iter().map(|(t, _)| t).collect();
        // Each branch fails when both sides won or neither did: a paid order the
        // deadline also canceled, or a refused payment with nothing expired.
        if paying.status == StatusCode::OK {
            assert_eq!((expired, &order["status"]), (0, &json!("PAID")), "the payment won: nothing expired");
            assert_eq!(types.last().map(String::as_str), Some("OrderStatusChanged"));
            outcomes.0 += 1;
        } else {
            let message = paying.error(StatusCode::CONFLICT, "a payment that lost the race");
            assert_eq!(message, TOO_LATE, "the losing payment is told the deadline canceled the order");
            assert_eq!((expired, &order["orderItems"]), (1, &expired_items()), "the deadline won");
            assert_eq!(types.last().map(String::as_str), Some("OrderCanceled"));
            outcomes.1 += 1;
        }
        assert_eq!(types.len(), 4, "exactly one of payment and cancellation: {types:?}");
    }
    // Which side wins is up to the scheduler; each round above checked its winner.
    eprintln!("payments won {}, deadlines won {}", outcomes.0, outcomes.1);
}

#[test]
fn the_payment_timeout_defaults_to_30_minutes_and_0_is_accepted() {
    let parsed = |args: &[&str]| {
        command_api::Cli::try_parse_from(args.iter().copied()).expect("the settings parse").serve.payment_timeout_ms
    };
    assert_eq!(parsed(&["oms"]), 1_800_000, "30 minutes unless told otherwise");
    assert_eq!(parsed(&["oms", "--payment-timeout-ms", "0"]), 0);
    let command = command_api::Cli::command();
    let argument = command
        .get_arguments()
        .find(|argument| argument.get_long() == Some("payment-timeout-ms"))
        .expect("the flag exists");
    assert_eq!(argument.get_env().and_then(|name| name.to_str()), Some("ORDER_PAYMENT_TIMEOUT_MS"));
}

/// Makes the order look resolved (and last changed) a year ago.
async fn backdate(app: &TestApp, order_id: &str) {
    sqlx::query(
        "UPDATE order_view SET resolved_at = resolved_at - interval '1 year', updated_at = updated_at - interval '1 year'
          WHERE order_id = $1::uuid",
    )
    .bind(order_id)
    .execute(&app.pool)
    .await
    .expect("backdating the order");
}

#[tokio::test]
async fn with_the_deadline_off_a_resolved_order_is_never_canceled() {
    let off = spawn_app_with(|settings| settings.payment_timeout_ms = 0).await;
    let id = executed_order(&off).await;
    backdate(&off, &id).await;
    // Longer than two passes of any deadline (a pass every second at most).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(off.get_order(&id).await.data(StatusCode::OK)["status"], "EXECUTED", "a year unpaid, still open");
    let types: Vec<String> = events(&off, &id).await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["OrderPlaced", "ItemExecuted", "ItemExecuted"], "nothing decided");
    let database = off.database_url.clone();
    drop(off);

    // The same order is due for any deadline: an OMS with an hour's cancels it.
    let on = spawn_app_with(|settings| {
        settings.service.database.url = database.parse().expect("a URL");
        settings.payment_timeout_ms = 3_600_000;
    })
    .await;
    let started = Instant::now();
    while on.get_order(&id).await.data(StatusCode::OK)["status"] != "CANCELED" {
        assert!(started.elapsed() < Duration::from_secs(10), "an hour's deadline did not expire a year-old order");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_deadline_runs_from_the_resolution_not_from_a_later_item_cancellation() {
    let app = spawn_app().await;
    let deadline = Duration::from_secs(2);
    let one = instance(&app).await;
    let id = executed_order(&app).await;
    let resolved = Instant::now();
    tokio::time::sleep(deadline * 3 / 5).await;
    let fewer = json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]});
    let changed = app.put_order(&id, &fewer).await.data(StatusCode::OK).clone();
    assert_eq!(changed["status"], "PARTIALLY_EXECUTED", "still resolved, one item fewer");

    // Due a deadline after the resolution, although it changed less than one ago.
    tokio::time::sleep((resolved + deadline + Duration::from_millis(100)).saturating_duration_since(Instant::now()))
        .await;
    assert_eq!(one.pass(deadline).await, 1, "expired a deadline after its resolution");
    assert_eq!(
        app.get_order(&id).await.data(StatusCode::OK)["orderItems"],
        json!([
            {"productId": "mug", "quantity": 2, "status": "CANCELED", "reason": "PAYMENT_TIMEOUT"},
            {"productId": "tea", "quantity": 1, "status": "CANCELED", "reason": "CANCELED_BY_CUSTOMER"},
        ])
    );
}

#[tokio::test]
async fn a_quantity_change_makes_the_next_resolution_start_the_deadline_again() {
    let app = spawn_app().await;
    let id = executed_order(&app).await;
    let first: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT resolved_at FROM order_view WHERE order_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .expect("the row");
    assert!(first.is_some(), "resolved");
    let more = json!({"orderItems": [{"productId": "mug", "quantity": 3}]});
    let changed = app.put_order(&id, &more).await.data(StatusCode::OK).clone();
    assert_eq!(changed["status"], "PENDING", "the mug waits for the inventory service again");
    let (pending_since, resolved_at): (chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT updated_at, resolved_at FROM order_view WHERE order_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .expect("the row");
    assert_eq!(resolved_at, None, "not resolved while pending");

    let orders = Orders::new(app.pool.clone());
    let revision = changed["version"].as_u64().expect("a version");
    let mut again = outcome(id.parse().expect("an id"), "mug", ItemOutcome::Executed);
    if let OrderCommand::RecordItemOutcome(record) = &mut again.command {
        record.revision = revision;
    }
    orders.execute_all(&[again]).await.expect("recorded").remove(0).expect("accepted");
    let (updated_at, resolved_at): (chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT updated_at, resolved_at FROM order_view WHERE order_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .expect("the row");
    assert_eq!(resolved_at, Some(updated_at), "resolved anew by the outcome");
    assert!(updated_at > pending_since, "after the change");
}

#[tokio::test]
async fn a_backlog_larger_than_a_batch_is_canceled_in_one_pass_and_split_between_instances() {
    let app = spawn_app().await;
    let (one, other) = (instance(&app).await, instance(&app).await);
    let backlog = executed_orders(&app, 250).await;
    tokio::time::sleep(DEADLINE + Duration::from_millis(100)).await;
    assert_eq!(one.pass(DEADLINE).await, 250, "one pass works through more than one batch");
    assert_eq!(canceled(&app, &backlog).await, (250, 250));

    let backlog = executed_orders(&app, 250).await;
    tokio::time::sleep(DEADLINE + Duration::from_millis(100)).await;
    let (a, b) = tokio::join!(one.pass(DEADLINE), other.pass(DEADLINE));
    assert_eq!(a + b, 250, "two instances cancel the backlog between them");
    assert_eq!(canceled(&app, &backlog).await, (250, 250), "each order once");
    eprintln!("instances canceled {a} and {b}");
}

#[tokio::test]
async fn an_order_another_instance_has_claimed_is_left_to_it() {
    let app = spawn_app().await;
    let (one, other) = (instance(&app).await, instance(&app).await);
    let id = executed_order(&app).await;
    tokio::time::sleep(DEADLINE + Duration::from_millis(100)).await;

    let mut connection = migrations::Pooled::acquire(&one.pool).await.expect("a connection");
    let mut claim = connection.begin().await.expect("a transaction");
    let claimed = claim_due(&mut claim, DEADLINE).await.expect("a claim");
    let claimed: Vec<String> = claimed.iter().map(|due| due.order_id.to_string()).collect();
    assert_eq!(claimed, [id.as_str()], "the due order, claimed");
    assert_eq!(other.pass(DEADLINE).await, 0, "claimed by the first instance");
    claim.rollback().await.expect("the claim released");
    assert_eq!(other.pass(DEADLINE).await, 1, "free again once the claim ends");
}
