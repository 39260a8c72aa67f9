//! The payment deadline (`--payment-timeout-ms`): an order resolved (`EXECUTED` or
//! `PARTIALLY_EXECUTED`) and not paid within the deadline after its last change is
//! canceled by the OMS, its items `CANCELED` for `PAYMENT_TIMEOUT`; the inventory
//! service then releases their stock, as for a customer's cancellation.
//!
//! The deadline is durable without a table of its own: orders awaiting payment are in
//! the order view (PostgreSQL) with the time of their last change, found through a
//! partial index of those only (migration 0009). Each due order is canceled only while
//! it is still at the version the view showed (`If-Match`, in effect): a payment, an
//! item change or another instance's expiry that committed since makes the
//! cancellation stale, and nothing is stored. So with several instances, after
//! restarts and against a racing payment, an order expires at most once and never
//! once paid; the payment that loses the race is refused (409, the order is canceled).
//!
//! Orders paid before this release are unaffected; orders resolved and unpaid when it
//! is deployed expire a deadline after their last change.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::OrderId;
use domain::order::OrderCommand;
use eventstore::EventMetadata;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::orders::{Orders, OrdersError};

/// Most orders canceled per pass.
const BATCH: i64 = 100;

/// Who the cancellations' events name as their actor.
const ACTOR: &str = "oms-payment-deadline";

/// Cancels unpaid orders `timeout` after their last change, until `shutdown`.
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

/// One pass: cancels every order that has awaited payment longer than `timeout`,
/// each at the version the view shows. Returns how many this pass canceled.
pub async fn expire_due(pool: &PgPool, orders: &Orders, timeout: Duration) -> anyhow::Result<usize> {
    let due: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT order_id, version FROM order_view
          WHERE status IN ('EXECUTED', 'PARTIALLY_EXECUTED') AND updated_at <= now() - make_interval(secs => $1)
          ORDER BY updated_at
          LIMIT $2",
    )
    .bind(timeout.as_secs_f64())
    .bind(BATCH)
    .fetch_all(pool)
    .await
    .context("finding orders past their payment deadline")?;
    let mut canceled = 0;
    for (order_id, version) in due {
        let order_id = OrderId::from(order_id);
        let seen = [u64::try_from(version).unwrap_or_default()];
        let metadata = EventMetadata::new(format!("payment-deadline-{order_id}"), format!("deadline-{version}"), ACTOR);
        match orders.execute_if(order_id, Some(&seen), OrderCommand::CancelUnpaid, &metadata).await {
            Ok(view) if view.version > seen[0] => {
                canceled += 1;
                telemetry::pipeline::record_payment_timeouts(1);
                tracing::info!(%order_id, "order canceled: not paid in time");
            }
            // Already canceled, paid or changed: the order moved on since the view
            // showed it (another instance expired it, or the client won the race).
            Ok(_) | Err(OrdersError::Stale { .. } | OrdersError::NotFound | OrdersError::Conflict) => {}
            Err(error) => return Err(error).with_context(|| format!("canceling order {order_id}")),
        }
    }
    Ok(canceled)
}
