//! What the inventory service publishes, derived from product events:
//! per-item outcomes (keyed by order id, so each order's outcomes stay in order) and
//! stock alerts (keyed by product id). The messages themselves are
//! [`messaging::messages`]'s, which the OMS reads with the same types.

use domain::ProductId;
use domain::inventory::{Product, ProductEvent};
use eventstore::{Aggregate, FeedEvent};
use messaging::messages::alerts::{AlertKind, StockAlert, StockLevel};
use messaging::messages::outcomes::{ItemCanceled, ItemExecuted, Outcome};
use messaging::{OutgoingMessage, Route, Unroutable};

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
        if event.aggregate_type != Product::TYPE {
            return Ok(vec![]);
        }
        let unroutable = |reason: String| Unroutable { topic: self.outcomes_topic.clone(), reason };
        let decoded = serde_json::from_str::<ProductEvent>(event.payload.get()).map_err(|error| {
            unroutable(format!(
                "stored product event {} v{} does not decode: {error}",
                event.event_type, event.event_version
            ))
        })?;
        // Parsed only for an event that announces something, so that an event that
        // announces nothing is never parked for its id.
        let product_id = || {
            ProductId::parse(event.aggregate_id.as_str()).map_err(|error| {
                unroutable(format!("stored product event {} has an invalid product id: {error}", event.event_type))
            })
        };
        let outcome = |outcome: Outcome| OutgoingMessage {
            topic: self.outcomes_topic.clone(),
            key: outcome.order_id().to_string(),
            envelope: outcome.envelope(event),
        };
        let alert = |kind, available| -> Result<OutgoingMessage, Unroutable> {
            let alert = StockAlert { kind, level: StockLevel { product_id: product_id()?, available } };
            Ok(OutgoingMessage {
                topic: self.alerts_topic.clone(),
                key: alert.level.product_id.as_str().to_owned(),
                envelope: alert.envelope(event),
            })
        };
        Ok(match decoded {
            ProductEvent::StockReserved { order_id, reserved_for_order, revision, .. }
            | ProductEvent::ReservationReduced { order_id, reserved_for_order, revision, .. } => {
                vec![outcome(Outcome::Executed(ItemExecuted {
                    order_id,
                    product_id: product_id()?,
                    quantity: reserved_for_order,
                    revision,
                }))]
            }
            ProductEvent::ReservationRejected { order_id, requested, available, revision, reason } => {
                vec![outcome(Outcome::Canceled(ItemCanceled {
                    order_id,
                    product_id: product_id()?,
                    quantity: requested,
                    revision,
                    reason,
                    available,
                }))]
            }
            ProductEvent::LowStockReached { available } => vec![alert(AlertKind::LowStockReached, available)?],
            ProductEvent::OutOfStock => vec![alert(AlertKind::OutOfStock, 0)?],
            ProductEvent::BackInStock { available } => vec![alert(AlertKind::BackInStock, available)?],
            ProductEvent::ProductAdded { .. }
            | ProductEvent::ProductRenamed { .. }
            | ProductEvent::LowStockThresholdChanged { .. }
            | ProductEvent::StockRestocked { .. }
            | ProductEvent::StockAdjusted { .. }
            | ProductEvent::StockReleased { .. }
            | ProductEvent::StockShipped { .. } => vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    //! What the relay publishes for each product event: the wire form the OMS and
    //! downstream services have read since the first release.

    use std::collections::HashMap;

    use chrono::{TimeZone, Utc};
    use domain::order::RejectionReason;
    use domain::{OrderId, Quantity};
    use eventstore::{DomainEvent, FeedPosition};
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;

    const ORDER_ID: &str = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b";

    fn route() -> ProductEventsRoute {
        ProductEventsRoute { outcomes_topic: "outcomes".into(), alerts_topic: "alerts".into() }
    }

    /// `event` of product `mug` at sequence 9, stored as postgres-es stores it.
    fn stored(event: &ProductEvent) -> FeedEvent {
        FeedEvent {
            position: FeedPosition { transaction_id: 7, global_position: 42 },
            event_id: Uuid::from_u128(1),
            aggregate_type: "Product".into(),
            aggregate_id: "mug".into(),
            sequence: 9,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: serde_json::value::to_raw_value(event).expect("encodes"),
            metadata: HashMap::from([
                ("correlation_id".to_owned(), "checkout-42".to_owned()),
                ("causation_id".to_owned(), "req-1".to_owned()),
                ("occurred_at".to_owned(), "2024-05-01T10:00:00.000000Z".to_owned()),
            ]),
            recorded_at: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 1).single().expect("a time"),
        }
    }

    /// (topic, key, message type, version, payload) of each message published for `event`.
    fn published(event: &ProductEvent) -> Vec<(String, String, String, String, Value)> {
        let stored = stored(event);
        let messages = route().route(&stored).expect("routable");
        for message in &messages {
            let envelope = &message.envelope;
            assert_eq!(
                (
                    envelope.event_id,
                    envelope.aggregate_type.as_str(),
                    envelope.aggregate_id.as_str(),
                    envelope.sequence
                ),
                (stored.event_id, "Product", "mug", 9),
                "the ids of the event that announced it"
            );
            assert_eq!(
                (envelope.occurred_at.as_str(), envelope.correlation_id.as_str(), envelope.causation_id.as_str()),
                ("2024-05-01T10:00:00.000000Z", "checkout-42", "req-1")
            );
        }
        messages
            .into_iter()
            .map(|m| {
                let e = m.envelope;
                (m.topic, m.key, e.event_type, e.event_version, e.payload)
            })
            .collect()
    }

    fn message(topic: &str, key: &str, event_type: &str, payload: Value) -> (String, String, String, String, Value) {
        (topic.into(), key.into(), event_type.into(), "1.0".into(), payload)
    }

    #[test]
    fn every_product_event_is_published_in_the_wire_form_its_readers_know() {
        let order_id: OrderId = ORDER_ID.parse().expect("a UUID");
        let units = |n| Quantity::new(n).expect("a quantity");
        let cases = [
            (
                ProductEvent::StockReserved { order_id, quantity: 2, reserved_for_order: units(2), revision: 1 },
                vec![message(
                    "outcomes",
                    ORDER_ID,
                    "OrderItemExecuted",
                    json!({"orderId": ORDER_ID, "productId": "mug", "quantity": 2, "revision": 1}),
                )],
            ),
            (
                ProductEvent::ReservationReduced {
                    order_id,
                    quantity: units(1),
                    reserved_for_order: units(3),
                    revision: 4,
                },
                vec![message(
                    "outcomes",
                    ORDER_ID,
                    "OrderItemExecuted",
                    json!({"orderId": ORDER_ID, "productId": "mug", "quantity": 3, "revision": 4}),
                )],
            ),
            (
                ProductEvent::ReservationRejected {
                    order_id,
                    requested: units(5),
                    available: 4,
                    revision: 2,
                    reason: RejectionReason::InsufficientStock,
                },
                vec![message(
                    "outcomes",
                    ORDER_ID,
                    "OrderItemCanceled",
                    json!({"orderId": ORDER_ID, "productId": "mug", "quantity": 5, "revision": 2,
                           "reason": "INSUFFICIENT_STOCK", "available": 4}),
                )],
            ),
            (
                ProductEvent::LowStockReached { available: 3 },
                vec![message("alerts", "mug", "LowStockReached", json!({"productId": "mug", "available": 3}))],
            ),
            (
                ProductEvent::OutOfStock,
                vec![message("alerts", "mug", "OutOfStock", json!({"productId": "mug", "available": 0}))],
            ),
            (
                ProductEvent::BackInStock { available: 7 },
                vec![message("alerts", "mug", "BackInStock", json!({"productId": "mug", "available": 7}))],
            ),
            (ProductEvent::StockRestocked { quantity: units(7) }, vec![]),
            (
                ProductEvent::ProductRenamed {
                    name: domain::inventory::ProductName::parse("Big mug").expect("a name"),
                },
                vec![],
            ),
            (ProductEvent::LowStockThresholdChanged { low_stock_threshold: 4 }, vec![]),
            (
                ProductEvent::StockAdjusted {
                    quantity: domain::inventory::UnitChange::new(-2).expect("a change"),
                    reason: domain::inventory::AdjustmentReason::Damaged,
                },
                vec![],
            ),
            (ProductEvent::StockReleased { order_id, quantity: 2, revision: 3 }, vec![]),
        ];
        for (event, expected) in cases {
            assert_eq!(published(&event), expected, "{}", event.event_type());
        }
    }

    #[test]
    fn a_stored_product_event_that_does_not_decode_is_unroutable_for_the_outcomes_topic() {
        let mut event = stored(&ProductEvent::OutOfStock);
        event.payload = serde_json::value::to_raw_value(&json!({"OutOfStock": {"available": "many"}})).expect("JSON");
        event.event_type = "StockTeleported".into();
        let unroutable = route().route(&event).expect_err("unroutable");
        assert_eq!(unroutable.topic, "outcomes");
    }
}
