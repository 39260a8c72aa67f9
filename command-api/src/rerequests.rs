//! Re-requests of stuck items: an item still `PENDING` some time after its request
//! (`--rerequest-after-ms`) is asked for again, since the messages between the
//! services may have been lost (a broker that restarted empty forgets everything).
//!
//! Asking again is republishing, to the order-events topic, the order event that made
//! the item pending (the event at the item's revision), exactly as the relay published
//! it (same envelope and route) plus the header `re-request: 1`. The saga handles it
//! like the first request: an item already decided decides nothing and has its
//! outcome announced again; the outcome consumer applies an outcome only while it
//! matches the item's pending revision. So asking again is idempotent.
//!
//! The backoff is per order and durable (`order_rerequests`): the delay doubles from
//! the setting up to [`MAX_BACKOFF`] while the order stays pending, and starts again
//! when the order moves on. An order is claimed by an upsert conditioned on its next
//! time, so with several OMS instances one asks for a given order at a time. Pending
//! orders are found through a partial index of the order view (pending ones only), so
//! a pass costs the same however many orders the view holds.
//!
//! An order's age is taken from its last change (`updated_at`): an item may have been
//! requested a little earlier than a sibling's outcome, which only delays its
//! re-request by that much.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::OrderId;
use domain::order::{ItemStatus, Order};
use eventstore::Aggregate;
use messaging::envelope::RE_REQUEST_HEADER;
use messaging::{KafkaSettings, ReplaceableProducer, Route};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::orders::Orders;
use crate::publishing::OrderEventsRoute;

/// The longest wait between two re-requests of one order.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Most orders asked for again per pass.
const BATCH: i64 = 100;

/// How long one republished message may wait for the broker.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks again for items still pending `after` their order's last change, until
/// `shutdown`. Returns at once when `after` is zero (re-requests off).
pub async fn run(
    pool: PgPool,
    orders: Arc<Orders>,
    producer: Arc<ReplaceableProducer>,
    kafka: KafkaSettings,
    after: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if after.is_zero() {
        return Ok(());
    }
    let rerequests = Rerequests::new(pool, orders, producer, &kafka, after);
    // Often enough to ask shortly after an item became due, rarely enough to cost
    // nothing when none is.
    let poll = (after / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
    tracing::info!(after_ms = after.as_millis() as u64, "re-requests of stuck items started");
    let (done, failed) = ("asked again for items still pending", "re-request pass failed; trying again");
    crate::periodic::every(poll, shutdown, done, failed, || rerequests.pass()).await
}

/// Finds orders with stuck items and republishes their pending requests.
pub struct Rerequests {
    pool: PgPool,
    orders: Arc<Orders>,
    /// The service's producer, shared with its relay; recovered after a failed send
    /// as the relay recovers it (an idempotent producer that outlived its broker,
    /// restarted empty, fails for good).
    producer: Arc<ReplaceableProducer>,
    route: OrderEventsRoute,
    kafka: KafkaSettings,
    after: Duration,
}

impl Rerequests {
    /// Re-requests for orders of `orders` (stored through `pool`, search path: the OMS
    /// schema) pending longer than `after`, published through `producer` to `kafka`'s
    /// order-events topic.
    pub fn new(
        pool: PgPool,
        orders: Arc<Orders>,
        producer: Arc<ReplaceableProducer>,
        kafka: &KafkaSettings,
        after: Duration,
    ) -> Self {
        Self {
            pool,
            orders,
            producer,
            route: OrderEventsRoute { topic: kafka.topics.order_events.clone() },
            kafka: kafka.clone(),
            after,
        }
    }

    /// One pass: reports the age of the oldest pending order, forgets the backoff of
    /// orders no longer pending, and asks again for every due order this instance
    /// claims. Returns how many orders were asked for.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let oldest: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - min(updated_at))::float8 FROM order_view WHERE status = 'PENDING'",
        )
        .fetch_one(&self.pool)
        .await
        .context("measuring the oldest pending order")?;
        telemetry::pipeline::record_pending_oldest_age(Duration::from_secs_f64(oldest.unwrap_or(0.0).max(0.0)));
        sqlx::query(
            "DELETE FROM order_rerequests r
              WHERE NOT EXISTS (SELECT 1 FROM order_view v WHERE v.order_id = r.order_id AND v.status = 'PENDING')",
        )
        .execute(&self.pool)
        .await
        .context("forgetting resolved orders")?;
        let due: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT v.order_id, v.version FROM order_view v
              WHERE v.status = 'PENDING' AND v.updated_at <= now() - make_interval(secs => $1)
                AND NOT EXISTS (SELECT 1 FROM order_rerequests r
                                 WHERE r.order_id = v.order_id AND r.order_version = v.version AND r.next_at > now())
              ORDER BY v.updated_at
              LIMIT $2",
        )
        .bind(self.after.as_secs_f64())
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await
        .context("finding stuck orders")?;
        if due.is_empty() {
            return Ok(0);
        }
        // A broker that restarted empty has forgotten the topic too, and a message to a
        // missing topic waits until it times out.
        messaging::topics::ensure_topics(&self.kafka, &[&self.route.topic])
            .await
            .context("making sure the order-events topic exists")?;
        let mut asked = 0;
        for (order_id, version) in due {
            if !self.claim(order_id, version).await? {
                continue; // another instance asks for it
            }
            let order_id = OrderId::from(order_id);
            match self.ask_again(order_id).await {
                Ok(0) => {}
                Ok(messages) => {
                    asked += 1;
                    telemetry::pipeline::record_rerequests(messages as u64);
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), %order_id, "re-request failed; asking again later");
                    self.retry_soon(order_id).await?;
                }
            }
        }
        Ok(asked)
    }

    /// Takes the order's next re-request for this instance and sets the one after it
    /// (the delay doubles from `after` up to [`MAX_BACKOFF`]; a newer order version
    /// starts again from `after`); false when another instance took it first.
    async fn claim(&self, order_id: Uuid, version: i64) -> anyhow::Result<bool> {
        let claimed: Option<i32> = sqlx::query_scalar(
            "INSERT INTO order_rerequests AS r (order_id, order_version, attempts, last_at, next_at)
             VALUES ($1, $2, 1, now(), now() + least(make_interval(secs => $3 * 2), make_interval(secs => $4)))
             ON CONFLICT (order_id) DO UPDATE
                SET order_version = EXCLUDED.order_version,
                    attempts = CASE WHEN r.order_version = EXCLUDED.order_version THEN r.attempts + 1 ELSE 1 END,
                    last_at = now(),
                    next_at = now() + least(make_interval(secs => $3 * power(2, least(CASE WHEN r.order_version = EXCLUDED.order_version
                                                                                         THEN r.attempts + 1 ELSE 1 END, 20))),
                                            make_interval(secs => $4))
              WHERE r.next_at <= now() OR r.order_version <> EXCLUDED.order_version
             RETURNING r.attempts",
        )
        .bind(order_id)
        .bind(version)
        .bind(self.after.as_secs_f64())
        .bind(MAX_BACKOFF.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
        .context("claiming a re-request")?;
        Ok(claimed.is_some())
    }

    /// A re-request that could not be sent is tried again after `after`, not after the
    /// (doubled) backoff: a broker outage must not push every order's next try far out.
    async fn retry_soon(&self, order_id: OrderId) -> anyhow::Result<()> {
        sqlx::query("UPDATE order_rerequests SET next_at = now() + make_interval(secs => $2) WHERE order_id = $1")
            .bind(order_id.as_uuid())
            .bind(self.after.as_secs_f64())
            .execute(&self.pool)
            .await
            .context("rescheduling a re-request")?;
        Ok(())
    }

    /// Republishes the order events that made the order's pending items pending (one
    /// per distinct revision), as the relay did, with the re-request header. Returns
    /// how many were sent.
    pub async fn ask_again(&self, order_id: OrderId) -> anyhow::Result<usize> {
        let order = self.orders.state(order_id).await.context("loading the order")?;
        let mut revisions: Vec<i64> = order
            .items()
            .iter()
            .filter(|item| item.status == ItemStatus::Pending)
            .filter_map(|item| i64::try_from(item.revision).ok())
            .collect();
        revisions.sort_unstable();
        revisions.dedup();
        if revisions.is_empty() {
            return Ok(0);
        }
        let events = eventstore::load_events_at(&self.pool, Order::TYPE, &order_id.to_string(), &revisions)
            .await
            .context("reading the pending requests")?;
        let mut sent = 0;
        for event in &events {
            let trace = event.trace_headers();
            for message in self.route.route(event).context("routing a pending request")? {
                message.send(&self.producer, &self.kafka, &trace, &[(RE_REQUEST_HEADER, "1")], SEND_TIMEOUT).await?;
                tracing::info!(%order_id, revision = event.sequence, event_type = %event.event_type, "asked again for pending items");
                sent += 1;
            }
        }
        Ok(sent)
    }
}
