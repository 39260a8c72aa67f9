//! What the inventory service publishes, derived from product events:
//! per-item outcomes (keyed by order id, so each order's outcomes stay in order) and
//! stock alerts (keyed by product id).

use domain::inventory::ProductEvent;
use eventstore::FeedEvent;
use messaging::{Envelope, OutgoingMessage, Route, Unroutable};
use serde_json::json;

/// Message type of an item whose units are reserved.
pub const ITEM_EXECUTED: &str = "OrderItemExecuted";
/// Message type of an item that cannot be served.
pub const ITEM_CANCELED: &str = "OrderItemCanceled";

/// Routes product events to the outcomes and alerts topics.
pub struct ProductEventsRoute {
    /// `inventory.order-outcomes`.
    pub outcomes_topic: String,
    /// `inventory.stock-alerts`.
    pub alerts_topic: String,
}

impl Route for ProductEventsRoute {
    fn topics(&self) -> Vec<String> {
        vec![self.outcomes_topic.clone(), self.alerts_topic.clone()]
    }

    /// A product event that does not decode is unroutable (parked for the outcomes
    /// topic, where most product events go), never skipped.
    fn route(&self, event: &FeedEvent) -> Result<Vec<OutgoingMessage>, Unroutable> {
        if event.aggregate_type != "Product" {
            return Ok(vec![]);
        }
        let product_id = &event.aggregate_id;
        let decoded = serde_json::from_str::<ProductEvent>(event.payload.get()).map_err(|error| Unroutable {
            topic: self.outcomes_topic.clone(),
            reason: format!(
                "stored product event {} v{} does not decode: {error}",
                event.event_type, event.event_version
            ),
        })?;
        let outcome = |event_type: &str, order_id: String, payload| OutgoingMessage {
            topic: self.outcomes_topic.clone(),
            key: order_id,
            envelope: Envelope::from_feed(event, event_type, payload),
        };
        let alert = |available: u64| OutgoingMessage {
            topic: self.alerts_topic.clone(),
            key: product_id.clone(),
            envelope: Envelope::from_feed(
                event,
                event.event_type.clone(),
                json!({ "productId": product_id, "available": available }),
            ),
        };
        Ok(match decoded {
            ProductEvent::StockReserved { order_id, reserved_for_order, revision, .. }
            | ProductEvent::ReservationReduced { order_id, reserved_for_order, revision, .. } => vec![outcome(
                ITEM_EXECUTED,
                order_id.to_string(),
                json!({ "orderId": order_id, "productId": product_id, "quantity": reserved_for_order, "revision": revision }),
            )],
            ProductEvent::ReservationRejected { order_id, requested, available, revision, reason } => vec![outcome(
                ITEM_CANCELED,
                order_id.to_string(),
                json!({ "orderId": order_id, "productId": product_id, "quantity": requested, "revision": revision,
                        "reason": reason, "available": available }),
            )],
            ProductEvent::LowStockReached { available } | ProductEvent::BackInStock { available } => {
                vec![alert(available)]
            }
            ProductEvent::OutOfStock => vec![alert(0)],
            ProductEvent::ProductAdded { .. }
            | ProductEvent::StockRestocked { .. }
            | ProductEvent::StockReleased { .. } => vec![],
        })
    }
}
