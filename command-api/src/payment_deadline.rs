//! The payment deadline (`--payment-timeout-ms`): an order resolved (`EXECUTED` or
//! `PARTIALLY_EXECUTED`) and not paid within the deadline after its resolution is
//! canceled by the OMS, its items `CANCELED` for `PAYMENT_TIMEOUT`; the inventory
//! service then releases their stock, as for a customer's cancellation.
//!
//! The deadline is durable without a table of its own: orders awaiting payment are in
//! the order view (PostgreSQL) with the time they were resolved (`resolved_at`, which
//! an item canceled later does not move), found through a partial index of those only
//! (migration 0010). Each due order is canceled only while it is still at the version
//! the view showed (`If-Match`, in effect): a payment, an item change or another
//! instance's expiry that committed since makes the cancellation stale, and nothing is
//! stored. So with several instances, after restarts and against a racing payment, an
//! order expires at most once and never once paid; the payment that loses the race is
//! refused (409, naming the deadline).
//!
//! Throughput: a pass takes due orders a batch at a time, oldest resolution first, and
//! goes on while batches come back full, up to [`BATCHES_PER_PASS`] (so a pass, which
//! shutdown waits for, stays short); each batch cancels [`CONCURRENT`] orders at a
//! time. Instances do not all work the same oldest rows: see [`claim_due`].
//!
//! Orders resolved and unpaid when `resolved_at` was added (migration 0010) count from
//! their last change then, until `oms rebuild` refolds their exact resolution.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::OrderId;
use domain::order::OrderCommand;
use eventstore::EventMetadata;
use futures::StreamExt;
use migrations::Pooled;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::orders::{Orders, OrdersError};

/// Most orders one claim takes.
const BATCH: i64 = 100;

/// Most batches per pass: up to 1,000 orders a pass from a backlog, while a pass stays
/// within seconds.
const BATCHES_PER_PASS: usize = 10;

/// Cancellations under way at once within a batch (each is a short transaction on a
/// connection of the pool).
const CONCURRENT: usize = 4;

/// Who the cancellations' events name as their actor.
const ACTOR: &str = "oms-payment-deadline";

/// Cancels unpaid orders `timeout` after their resolution, until `shutdown`.
/// Returns at once when `timeout` is zero (the deadline is off).
pub async fn run(
    pool: PgPool,
    orders: Arc<Orders>,
    timeout: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if timeout.is_zero() {
        return Ok(());
    }
    // Late by at most a tenth of the deadline (and a second at most), at little cost
    // when nothing is due: one index probe per pass.
    let poll = (timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
    tracing::info!(timeout_ms = timeout.as_millis() as u64, "payment deadline started");
    let (done, failed) = ("canceled orders not paid in time", "payment deadline pass failed; trying again");
    crate::periodic::every(poll, shutdown, done, failed, || expire_due(&pool, &orders, timeout)).await
}

/// One pass: cancels the orders that have awaited payment longer than `timeout` since
/// their resolution, each at the version the view shows, a batch at a time while
/// batches come back full (at most [`BATCHES_PER_PASS`]). Returns how many this pass
/// canceled.
pub async fn expire_due(pool: &PgPool, orders: &Orders, timeout: Duration) -> anyhow::Result<usize> {
    let mut canceled = 0;
    for _ in 0..BATCHES_PER_PASS {
        let batch = expire_batch(pool, orders, timeout).await?;
        canceled += batch.canceled;
        if batch.claimed < BATCH as usize {
            break;
        }
    }
    Ok(canceled)
}

/// A due order as the view showed it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Due {
    /// The order.
    pub order_id: Uuid,
    /// Its version in the view: the only one it is canceled at.
    pub version: i64,
}

/// What one batch came to.
struct Batch {
    /// Due orders this instance claimed.
    claimed: usize,
    /// Of those, how many it canceled.
    canceled: usize,
}

/// Claims a batch of due orders and cancels each at the version the view showed; the
/// claims end with the batch. The claiming transaction holds one connection of the
/// pool meanwhile and sits idle while the cancellations run on others (a batch lasts
/// far less than the server's idle-in-transaction timeout, which would only end the
/// claims early).
async fn expire_batch(pool: &PgPool, orders: &Orders, timeout: Duration) -> anyhow::Result<Batch> {
    let mut connection = Pooled::acquire(pool).await.context("starting a claim on due orders")?;
    let mut claim = connection.begin().await.context("starting a claim on due orders")?;
    let due = claim_due(&mut claim, timeout).await?;
    let claimed = due.len();
    let outcomes: Vec<anyhow::Result<bool>> =
        futures::stream::iter(due).map(|due| cancel(orders, due)).buffer_unordered(CONCURRENT).collect().await;
    // The claims are all this transaction holds; ending it releases them.
    claim.rollback().await.context("releasing the claims on due orders")?;
    let mut canceled = 0;
    for outcome in outcomes {
        canceled += usize::from(outcome?);
    }
    Ok(Batch { claimed, canceled })
}

/// At most a batch of the oldest due orders no other instance is working on, claimed
/// until `claim`'s transaction ends.
///
/// A claim is a transaction-level advisory lock per order, taken in `claim` and
/// skipped when another instance holds it, so instances split a backlog instead of all
/// canceling the same oldest rows (only one of which would win each). Not `FOR UPDATE
/// SKIP LOCKED`: the cancellations write the same view rows from other transactions
/// while the claim is held, so a row lock would make them wait on the claim that waits
/// on them; a row lock would also give the claim a transaction id, and an open one
/// holds back the commit-ordered feed, which an advisory lock does not. The claim
/// guards against wasted work only: that an order expires once, and never once paid,
/// comes from the version check, so a claim lost with its session costs nothing.
pub async fn claim_due(claim: &mut PgConnection, timeout: Duration) -> anyhow::Result<Vec<Due>> {
    // Locks are taken in the outer query, in the inner one's order, and only until the
    // limit is reached: `OFFSET 0` keeps the planner from pushing the lock into the
    // inner scan, where a sorted plan would lock every due order before the sort.
    sqlx::query_as(
        "SELECT order_id, version
           FROM (SELECT order_id, version FROM order_view
                  WHERE status IN ('EXECUTED', 'PARTIALLY_EXECUTED')
                    AND resolved_at <= now() - make_interval(secs => $1)
                  ORDER BY resolved_at
                 OFFSET 0) due
          WHERE pg_try_advisory_xact_lock(hashtext(current_schema() || ':payment-deadline'), hashtext(order_id::text))
          LIMIT $2",
    )
    .bind(timeout.as_secs_f64())
    .bind(BATCH)
    .fetch_all(claim)
    .await
    .context("claiming orders past their payment deadline")
}

/// Cancels `due` if it is still at the version the view showed; whether it did.
async fn cancel(orders: &Orders, due: Due) -> anyhow::Result<bool> {
    let order_id = OrderId::from(due.order_id);
    let seen = [u64::try_from(due.version).unwrap_or_default()];
    let metadata =
        EventMetadata::new(format!("payment-deadline-{order_id}"), format!("deadline-{}", due.version), ACTOR);
    match orders.execute_if(order_id, Some(&seen), OrderCommand::CancelUnpaid, &metadata).await {
        Ok(view) if view.version > seen[0] => {
            telemetry::pipeline::record_payment_timeouts(1);
            tracing::info!(%order_id, "order canceled: not paid in time");
            Ok(true)
        }
        // Already canceled, paid or changed: the order moved on since the view showed
        // it (another instance expired it, or the client won the race).
        Ok(_) | Err(OrdersError::Stale { .. } | OrdersError::NotFound | OrdersError::Conflict) => Ok(false),
        Err(error) => Err(error).with_context(|| format!("canceling order {order_id}")),
    }
}
