//! The OMS outcome consumer: applies the inventory service's per-item outcomes to
//! orders. Idempotent through the domain: a redelivered or superseded outcome decides
//! nothing; one for a canceled order changes nothing (the inventory service releases
//! what the cancellation covers).

use std::sync::Arc;

use domain::order::{ItemOutcome, OrderCommand, OrderError, RecordItemOutcome, RejectionReason};
use domain::{OrderId, ProductId};
use eventstore::EventMetadata;
use messaging::{Envelope, Handled, HandlerError, IncomingMessage, MessageHandler};
use serde::Deserialize;

use crate::orders::{Orders, OrdersError};

/// The message types of the outcomes topic.
pub const ITEM_EXECUTED: &str = "OrderItemExecuted";
/// See [`ITEM_EXECUTED`].
pub const ITEM_CANCELED: &str = "OrderItemCanceled";

const ACTOR: &str = "oms-outcomes";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutcomePayload {
    order_id: OrderId,
    product_id: ProductId,
    revision: u64,
    reason: Option<RejectionReason>,
}

/// Applies outcomes to orders.
pub struct OutcomeHandler {
    orders: Arc<Orders>,
}

impl OutcomeHandler {
    /// A handler writing through `orders`.
    pub fn new(orders: Arc<Orders>) -> Self {
        Self { orders }
    }
}

impl MessageHandler for OutcomeHandler {
    async fn handle(&self, message: &IncomingMessage) -> Result<Handled, HandlerError> {
        let body = message.payload.as_deref().ok_or_else(|| HandlerError::Poison("empty message".into()))?;
        let envelope: Envelope = serde_json::from_slice(body).map_err(|e| HandlerError::Poison(format!("not an envelope: {e}")))?;
        let payload: OutcomePayload = serde_json::from_value(envelope.payload.clone())
            .map_err(|e| HandlerError::Poison(format!("{} payload: {e}", envelope.event_type)))?;
        let outcome = match (envelope.event_type.as_str(), payload.reason) {
            (ITEM_EXECUTED, _) => ItemOutcome::Executed,
            (ITEM_CANCELED, Some(reason)) => ItemOutcome::Rejected(reason),
            (ITEM_CANCELED, None) => return Err(HandlerError::Poison("OrderItemCanceled without a reason".into())),
            (other, _) => return Err(HandlerError::Poison(format!("unknown message type {other}"))),
        };
        let command = OrderCommand::RecordItemOutcome(RecordItemOutcome { product_id: payload.product_id, revision: payload.revision, outcome });
        let metadata = EventMetadata::new(envelope.correlation_id, envelope.event_id.to_string(), ACTOR);
        match self.orders.execute(payload.order_id, command, &metadata).await {
            Ok(_) => Ok(Handled::Applied),
            Err(OrdersError::Rejected(rule @ (OrderError::NotFound | OrderError::ItemNotInOrder { .. }))) => {
                Err(HandlerError::Poison(format!("outcome for order {}: {rule}", payload.order_id)))
            }
            Err(OrdersError::Rejected(rule)) => Err(HandlerError::Poison(format!("outcome refused: {rule}"))),
            Err(error @ (OrdersError::Conflict | OrdersError::Storage(_) | OrdersError::NotFound)) => {
                Err(HandlerError::Transient(anyhow::anyhow!("applying an outcome to order {}: {error}", payload.order_id)))
            }
        }
    }
}
