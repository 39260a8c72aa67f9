//! Order events, on the order-events topic keyed by order id: every event of every
//! order, published as stored (its type, its version, its fields without the enum
//! tag), so that a reader upcasts a past version exactly as the event store does
//! ([`domain::order::decode_event`]). The inventory saga reads them; a re-request is
//! the same message sent again, with a header saying so.
//!
//! Their names and versions are the domain's, stored forever ([`OrderEvent`]'s
//! `event_type` and `event_version`): `OrderPlaced` 2.0 (1.0 before it recorded the
//! idempotency key), `OrderStatusChanged` 2.0 (1.0 before a shipment named the products
//! it consumes), `OrderCanceled` 2.0 (1.0 before it carried its reason), every other
//! event 1.0. Each is published in the version it was stored in.

use domain::OrderId;
use domain::order::{Order, OrderEvent, UnreadableEvent, decode_event};
use eventstore::{Aggregate, FeedEvent};

use super::expect_aggregate;
use crate::Envelope;
use crate::envelope::{InvalidEnvelope, bounded, quote};

/// The message for a stored event, if it is an order's: the event as stored.
pub fn envelope(event: &FeedEvent) -> Option<Envelope> {
    (event.aggregate_type == Order::TYPE).then(|| Envelope::from_feed(event, event.event_type.clone(), event.fields()))
}

/// An order event as read from the topic, upcast to the version this code writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEventMessage {
    /// The order (the envelope's aggregate id).
    pub order_id: OrderId,
    /// The event's sequence in the order's stream: the revision of the items it asks
    /// for, which answers name.
    pub revision: u64,
    /// The event.
    pub event: OrderEvent,
}

impl OrderEventMessage {
    /// Reads an order event from a consumed envelope (already checked by
    /// [`Envelope::parse`], which bounds the sequence): aggregate type `Order`, an order
    /// id that is a UUID, and the payload by the event's type and version (a version
    /// this code neither writes nor upcasts is refused, never guessed at).
    pub fn decode(envelope: &Envelope) -> Result<Self, InvalidEnvelope> {
        expect_aggregate::<Order>(envelope, "an order")?;
        let order_id: OrderId = envelope.aggregate_id.parse().map_err(|_| {
            InvalidEnvelope::new(
                "aggregateId",
                format!("an order id must be a UUID, got {}", quote(&envelope.aggregate_id)),
            )
        })?;
        let event = decode_event(&envelope.event_type, &envelope.event_version, envelope.payload.clone()).map_err(
            |e| match e {
                UnreadableEvent::UnsupportedVersion { .. } => InvalidEnvelope::new("eventVersion", e.to_string()),
                UnreadableEvent::Malformed { .. } => InvalidEnvelope::new("payload", bounded(&e.to_string())),
            },
        )?;
        let revision = u64::try_from(envelope.sequence).map_err(|_| InvalidEnvelope::new("sequence", "negative"))?;
        Ok(Self { order_id, revision, event })
    }
}

#[cfg(test)]
mod tests {
    //! The order events' wire form: each event's fields as the domain stores them, at
    //! the version it was stored with.

    use domain::order::{CancelReason, ItemChange, ItemStatus, OrderLine, RejectionReason, TargetStatus};
    use domain::{ProductId, Quantity, UserId};
    use eventstore::DomainEvent;
    use serde_json::{Value, json};

    use super::*;
    use crate::messages::testing::stored;

    const ORDER_ID: &str = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b";

    fn product(id: &str) -> ProductId {
        ProductId::parse(id).expect("a product id")
    }

    fn units(n: i64) -> Quantity {
        Quantity::new(n).expect("a quantity")
    }

    /// The message the OMS publishes for `event`, stored as the domain stores it.
    fn published(sequence: i64, event: &OrderEvent) -> Envelope {
        let event_type = event.event_type();
        let fields = serde_json::to_value(event).expect("encodes")[&event_type].take();
        envelope(&stored("Order", ORDER_ID, sequence, &event_type, &event.event_version(), fields)).expect("an order's")
    }

    #[test]
    fn every_order_event_is_pinned_on_the_wire_and_read_back_as_published() {
        let cases: Vec<(OrderEvent, &str, Value)> = vec![
            (
                OrderEvent::OrderPlaced {
                    user_id: UserId::parse("u-1").expect("a user id"),
                    items: vec![OrderLine { product_id: product("mug"), quantity: units(2) }],
                    idempotency_key: Some("checkout-42".into()),
                },
                "2.0",
                json!({"userId": "u-1", "items": [{"productId": "mug", "quantity": 2}], "idempotencyKey": "checkout-42"}),
            ),
            (
                OrderEvent::OrderItemsChanged {
                    items: vec![ItemChange {
                        product_id: product("tea"),
                        quantity: units(3),
                        status: ItemStatus::Pending,
                    }],
                },
                "1.0",
                json!({"items": [{"productId": "tea", "quantity": 3, "status": "PENDING"}]}),
            ),
            (
                OrderEvent::ItemExecuted { product_id: product("mug"), quantity: units(2), revision: 1 },
                "1.0",
                json!({"productId": "mug", "quantity": 2, "revision": 1}),
            ),
            (
                OrderEvent::ItemRejected {
                    product_id: product("mug"),
                    quantity: units(2),
                    revision: 1,
                    reason: RejectionReason::UnknownProduct,
                },
                "1.0",
                json!({"productId": "mug", "quantity": 2, "revision": 1, "reason": "UNKNOWN_PRODUCT"}),
            ),
            (
                OrderEvent::OrderStatusChanged { status: TargetStatus::Paid, items: vec![] },
                "2.0",
                json!({"status": "PAID", "items": []}),
            ),
            (
                OrderEvent::OrderStatusChanged { status: TargetStatus::Shipped, items: vec![product("mug")] },
                "2.0",
                json!({"status": "SHIPPED", "items": ["mug"]}),
            ),
            (
                OrderEvent::OrderCanceled { items: vec![product("mug")], reason: CancelReason::CanceledByCustomer },
                "2.0",
                json!({"items": ["mug"], "reason": "CANCELED_BY_CUSTOMER"}),
            ),
            (
                OrderEvent::OrderCanceled { items: vec![product("mug")], reason: CancelReason::PaymentTimeout },
                "2.0",
                json!({"items": ["mug"], "reason": "PAYMENT_TIMEOUT"}),
            ),
        ];
        for (event, version, payload) in cases {
            let name = event.event_type();
            let envelope = published(5, &event);
            assert_eq!(
                (envelope.aggregate_type.as_str(), envelope.aggregate_id.as_str(), envelope.event_type.as_str()),
                ("Order", ORDER_ID, name.as_str())
            );
            assert_eq!((envelope.event_version.as_str(), &envelope.payload), (version, &payload), "{name}");
            let read = OrderEventMessage::decode(&envelope).expect(&name);
            assert_eq!((read.order_id.to_string(), read.revision, read.event), (ORDER_ID.to_owned(), 5, event));
        }
    }

    #[test]
    fn a_placement_stored_at_1_0_is_published_as_stored_and_read_upcast() {
        let fields = json!({"userId": "u-1", "items": [{"productId": "mug", "quantity": 2}]});
        let envelope =
            envelope(&stored("Order", ORDER_ID, 1, "OrderPlaced", "1.0", fields.clone())).expect("published");
        assert_eq!((envelope.event_version.as_str(), &envelope.payload), ("1.0", &fields), "as stored");
        let read = OrderEventMessage::decode(&envelope).expect("upcast");
        assert!(matches!(read.event, OrderEvent::OrderPlaced { idempotency_key: None, .. }), "{read:?}");
    }

    #[test]
    fn a_product_event_is_not_published_on_the_order_topic() {
        assert_eq!(envelope(&stored("Product", "mug", 1, "OutOfStock", "1.0", json!({}))), None);
    }
}
