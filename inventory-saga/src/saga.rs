//! The reservation saga: consumes order events and reserves or releases stock per item
//! on the product aggregates. Its answers are product events (reserved, rejected,
//! reduced), which the relay publishes as per-item outcomes: the saga itself never
//! writes to Kafka, so an outcome cannot be lost or published without its effect.
//!
//! Idempotent through the domain: each request carries the order event's sequence as
//! the item revision, and a product decides nothing for a revision it has seen.
//!
//! Order events arrive as the OMS stored them, at whatever version they were written
//! (`OrderPlaced` 1.0 of orders placed by an older release, 2.0 since): each is upcast
//! with the domain's upcasters before it is decoded, and a version this code does not
//! know (a newer release's) is dead-lettered, never guessed at.

use std::sync::Arc;

use domain::OrderId;
use domain::inventory::{Product, ProductCommand};
use domain::order::{ItemStatus, OrderEvent, decode_event};
use eventstore::{Command, EventMetadata};
use messaging::{Envelope, Handled, IncomingMessage, MessageHandler, Unprocessable, Verdict};

use crate::products::Products;

const ACTOR: &str = "inventory-saga";

/// Turns order events into product commands.
pub struct ReservationSaga {
    products: Arc<Products>,
}

impl ReservationSaga {
    /// A saga writing through `products`.
    pub fn new(products: Arc<Products>) -> Self {
        Self { products }
    }
}

/// The product commands one order event asks for.
pub fn commands_for(order_id: OrderId, revision: u64, event: &OrderEvent) -> Vec<(domain::ProductId, ProductCommand)> {
    let reserve = |product_id: &domain::ProductId, quantity| (product_id.clone(), ProductCommand::ReserveStock { order_id, quantity, revision });
    let release = |product_id: &domain::ProductId| (product_id.clone(), ProductCommand::ReleaseStock { order_id, revision });
    match event {
        OrderEvent::OrderPlaced { items, .. } => items.iter().map(|line| reserve(&line.product_id, line.quantity)).collect(),
        OrderEvent::OrderItemsChanged { items } => items
            .iter()
            .map(|change| match change.status {
                ItemStatus::Canceled => release(&change.product_id),
                ItemStatus::Pending | ItemStatus::Executed => reserve(&change.product_id, change.quantity),
            })
            .collect(),
        OrderEvent::OrderCanceled { items } => items.iter().map(release).collect(),
        OrderEvent::ItemExecuted { .. } | OrderEvent::ItemRejected { .. } | OrderEvent::OrderStatusChanged { .. } => vec![],
    }
}

/// The product commands one message asks for, or why it can never be handled.
fn decode(message: &IncomingMessage) -> Result<Vec<Command<Product>>, Unprocessable> {
    let poison = |reason: String| Unprocessable(reason);
    let body = message.payload.as_deref().ok_or_else(|| poison("empty message".into()))?;
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| poison(format!("not an envelope: {e}")))?;
    if envelope.aggregate_type != "Order" {
        return Err(poison(format!("not an order event: {}", envelope.aggregate_type)));
    }
    let order_id: OrderId = envelope.aggregate_id.parse().map_err(|_| poison(format!("bad order id {}", envelope.aggregate_id)))?;
    let event = decode_event(&envelope.event_type, &envelope.event_version, envelope.payload).map_err(|e| poison(e.to_string()))?;
    let revision = u64::try_from(envelope.sequence).map_err(|_| poison("negative sequence".into()))?;
    let metadata = EventMetadata::new(envelope.correlation_id.clone(), envelope.event_id.to_string(), ACTOR);
    Ok(commands_for(order_id, revision, &event)
        .into_iter()
        .map(|(product_id, command)| Command { aggregate_id: product_id.as_str().to_owned(), command, metadata: metadata.clone() })
        .collect())
}

impl MessageHandler for ReservationSaga {
    /// Decides every reservation of the batch on the products, in message order, and
    /// commits them in one transaction: a hot product is loaded once per batch and
    /// never contends with itself.
    async fn handle(&self, messages: &[IncomingMessage]) -> anyhow::Result<Vec<Verdict>> {
        let mut verdicts: Vec<Verdict> = Vec::with_capacity(messages.len());
        let mut commands = Vec::new();
        let mut asked_by = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match decode(message) {
                Ok(asked) if asked.is_empty() => verdicts.push(Ok(Handled::Ignored)),
                Ok(asked) => {
                    asked_by.extend(std::iter::repeat_n(index, asked.len()));
                    commands.extend(asked);
                    verdicts.push(Ok(Handled::Applied));
                }
                Err(poison) => verdicts.push(Err(poison)),
            }
        }
        if commands.is_empty() {
            return Ok(verdicts);
        }
        let results = self.products.execute_all(&commands).await.map_err(|e| anyhow::anyhow!("reserving stock: {e}"))?;
        for ((result, command), index) in results.into_iter().zip(&commands).zip(asked_by) {
            if let Err(rule) = result {
                verdicts[index] = Err(Unprocessable(format!("product {} refused: {rule}", command.aggregate_id)));
            }
        }
        Ok(verdicts)
    }
}
