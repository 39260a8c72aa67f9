//! The reservation saga: consumes order events and reserves or releases stock per item
//! on the product aggregates. Its answers are product events (reserved, rejected,
//! reduced), which the relay publishes as per-item outcomes: the saga itself never
//! writes to Kafka, so an outcome cannot be lost or published without its effect.
//!
//! Idempotent through the domain: each request carries the order event's sequence as
//! the item revision, and a product decides nothing for a revision it has seen.

use std::sync::Arc;

use domain::OrderId;
use domain::inventory::ProductCommand;
use domain::order::{ItemStatus, OrderEvent};
use eventstore::EventMetadata;
use futures::future::try_join_all;
use messaging::{Envelope, Handled, HandlerError, IncomingMessage, MessageHandler};

use crate::products::{Products, ProductsError};

const ACTOR: &str = "inventory-saga";

/// The order event versions this saga understands.
const SUPPORTED_VERSION: &str = "1.0";

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

impl MessageHandler for ReservationSaga {
    async fn handle(&self, message: &IncomingMessage) -> Result<Handled, HandlerError> {
        let body = message.payload.as_deref().ok_or_else(|| HandlerError::Poison("empty message".into()))?;
        let envelope: Envelope = serde_json::from_slice(body).map_err(|e| HandlerError::Poison(format!("not an envelope: {e}")))?;
        if envelope.aggregate_type != "Order" {
            return Err(HandlerError::Poison(format!("not an order event: {}", envelope.aggregate_type)));
        }
        if envelope.event_version != SUPPORTED_VERSION {
            return Err(HandlerError::Poison(format!("{} version {} is not supported", envelope.event_type, envelope.event_version)));
        }
        let order_id: OrderId = envelope.aggregate_id.parse().map_err(|_| HandlerError::Poison(format!("bad order id {}", envelope.aggregate_id)))?;
        let tagged = serde_json::json!({ envelope.event_type.clone(): envelope.payload });
        let event: OrderEvent = serde_json::from_value(tagged).map_err(|e| HandlerError::Poison(format!("{}: {e}", envelope.event_type)))?;
        let revision = u64::try_from(envelope.sequence).map_err(|_| HandlerError::Poison("negative sequence".into()))?;
        let commands = commands_for(order_id, revision, &event);
        if commands.is_empty() {
            return Ok(Handled::Ignored);
        }
        let metadata = EventMetadata::new(envelope.correlation_id.clone(), envelope.event_id.to_string(), ACTOR);
        // Items of one order touch different products: they can go in parallel.
        try_join_all(commands.into_iter().map(|(product_id, command)| {
            let metadata = &metadata;
            async move {
                self.products.apply(&product_id, command, metadata).await.map_err(|error| match error {
                    ProductsError::Rejected(rule) => HandlerError::Poison(format!("product {product_id} refused: {rule}")),
                    other => HandlerError::Transient(anyhow::anyhow!("product {product_id}: {other}")),
                })
            }
        }))
        .await?;
        Ok(Handled::Applied)
    }
}
