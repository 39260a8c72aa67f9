//! Announcing again the outcome of an item already decided, when the OMS asks for it
//! again (a re-request: the item is still pending there long after its request, so
//! the first announcement may have been lost, e.g. by a broker that restarted empty).
//!
//! The outcome is the very message the relay published: the product event that
//! announced the decision (the product remembers its sequence per order, derived
//! state kept in `product_reservations`) is read back from the event store and routed
//! by the relay's route, so its shape is defined once and the OMS sees the same event
//! id, revision and reason. The OMS applies an outcome only while it matches the item's
//! pending revision, so announcing again is idempotent. A failed announcement is logged and left to the
//! next re-request (the OMS asks again, with backoff, until the item resolves).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::OrderId;
use domain::inventory::Product;
use eventstore::Aggregate;
use messaging::{KafkaSettings, OutgoingMessage, ReplaceableProducer, Route};
use sqlx::PgPool;

use crate::products::Products;
use crate::publishing::ProductEventsRoute;

/// How long one announcement may wait for the broker.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Announces decided outcomes again on the outcomes topic.
pub struct Reannouncer {
    pool: PgPool,
    products: Arc<Products>,
    /// The service's producer, shared with its relay; recovered after a failed send
    /// as the relay recovers it (an idempotent producer that outlived its broker,
    /// restarted empty, fails for good).
    producer: Arc<ReplaceableProducer>,
    route: ProductEventsRoute,
    kafka: KafkaSettings,
}

impl Reannouncer {
    /// Reads products through `products` and their events through `pool` (search path:
    /// the inventory schema); publishes as the relay does, through `producer` to
    /// `kafka`'s topics.
    pub fn new(
        pool: PgPool,
        products: Arc<Products>,
        producer: Arc<ReplaceableProducer>,
        kafka: &KafkaSettings,
    ) -> Self {
        let route = ProductEventsRoute {
            outcomes_topic: kafka.topics.order_outcomes.clone(),
            alerts_topic: kafka.topics.stock_alerts.clone(),
        };
        Self { pool, products, producer, route, kafka: kafka.clone() }
    }

    /// Announces again the outcome of each (product, order) the product has decided;
    /// returns how many outcomes were sent. Failures are logged: the next re-request
    /// tries again.
    pub async fn reannounce(&self, items: &[(String, OrderId)]) -> usize {
        // A broker that restarted empty has forgotten the topic too, and a message to a
        // missing topic waits until it times out.
        if let Err(error) = messaging::topics::ensure_topics(&self.kafka, &[&self.route.outcomes_topic]).await {
            tracing::warn!(%error, "outcomes not announced again: the outcomes topic is not there; the next re-request retries");
            return 0;
        }
        let mut sent = 0;
        for (product_id, order_id) in items {
            match self.announce(product_id, *order_id).await {
                Ok(messages) => sent += messages,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), product_id, %order_id, "outcome not announced again; the next re-request retries")
                }
            }
        }
        if sent > 0 {
            telemetry::pipeline::record_reannounced_outcomes(sent as u64);
        }
        sent
    }

    async fn announce(&self, product_id: &str, order_id: OrderId) -> anyhow::Result<usize> {
        let messages = self.outcome(product_id, order_id).await?;
        for (message, trace) in &messages {
            message.send(&self.producer, &self.kafka, trace, &[], SEND_TIMEOUT).await?;
            tracing::info!(product_id, %order_id, event_type = %message.envelope.event_type, revision = message.envelope.payload["revision"].as_u64(), "outcome announced again");
        }
        Ok(messages.len())
    }

    /// The outcome message(s) the relay published for the product's last decision on
    /// the order, with the trace headers their event kept; none when there is no
    /// outcome to repeat (never decided, or released by a cancellation).
    pub async fn outcome(
        &self,
        product_id: &str,
        order_id: OrderId,
    ) -> anyhow::Result<Vec<(OutgoingMessage, Vec<(String, String)>)>> {
        let announced =
            self.products.announcement(product_id, order_id).await.context("reading the order's reservation")?;
        let Some(sequence) = announced else { return Ok(vec![]) };
        let sequence = i64::try_from(sequence).context("sequence out of range")?;
        let events = eventstore::load_events_at(&self.pool, Product::TYPE, product_id, &[sequence])
            .await
            .context("reading the announcing event")?;
        let mut outcomes = Vec::new();
        for event in &events {
            let messages = self.route.route(event).context("routing the announcing event")?;
            let trace = event.trace_headers();
            outcomes.extend(
                messages.into_iter().filter(|m| m.topic == self.route.outcomes_topic).map(|m| (m, trace.clone())),
            );
        }
        Ok(outcomes)
    }
}
