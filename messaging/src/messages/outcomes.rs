//! Per-item outcomes, on the outcomes topic keyed by order id: what the inventory
//! service decided for an order's item. Published from the product event that
//! recorded the decision (reserved, reduced or rejected), so an outcome carries that
//! event's id, sequence and trace ids; read by the OMS, which records it on the order.

use domain::inventory::Product;
use domain::order::RejectionReason;
use domain::{OrderId, ProductId, Quantity};
use eventstore::FeedEvent;
use serde::{Deserialize, Serialize};

use super::{envelope_of, expect_aggregate, expect_version, payload};
use crate::Envelope;
use crate::envelope::{InvalidEnvelope, MAX_SEQUENCE, quote};

/// Message type of an item whose units are reserved.
pub const ITEM_EXECUTED: &str = "OrderItemExecuted";
/// Message type of an item that cannot be served.
pub const ITEM_CANCELED: &str = "OrderItemCanceled";
/// The version of both outcome messages.
pub const VERSION: &str = "1.0";

/// The payload of [`ITEM_EXECUTED`]: the item's units are reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemExecuted {
    /// The order.
    pub order_id: OrderId,
    /// The item's product.
    pub product_id: ProductId,
    /// What the order now holds of the product.
    pub quantity: Quantity,
    /// The item revision (order event sequence) answered.
    pub revision: u64,
}

/// The payload of [`ITEM_CANCELED`]: the item cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCanceled {
    /// The order.
    pub order_id: OrderId,
    /// The item's product.
    pub product_id: ProductId,
    /// Units asked.
    pub quantity: Quantity,
    /// The item revision (order event sequence) answered.
    pub revision: u64,
    /// Why.
    pub reason: RejectionReason,
    /// Units that were available.
    pub available: u64,
}

/// One outcome message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// [`ITEM_EXECUTED`].
    Executed(ItemExecuted),
    /// [`ITEM_CANCELED`].
    Canceled(ItemCanceled),
}

impl Outcome {
    /// The order it is about (the message key).
    pub fn order_id(&self) -> OrderId {
        match self {
            Self::Executed(executed) => executed.order_id,
            Self::Canceled(canceled) => canceled.order_id,
        }
    }

    /// The item's product.
    pub fn product_id(&self) -> &ProductId {
        match self {
            Self::Executed(executed) => &executed.product_id,
            Self::Canceled(canceled) => &canceled.product_id,
        }
    }

    /// The item revision answered.
    pub fn revision(&self) -> u64 {
        match self {
            Self::Executed(executed) => executed.revision,
            Self::Canceled(canceled) => canceled.revision,
        }
    }

    /// Its message type.
    pub fn message_type(&self) -> &'static str {
        match self {
            Self::Executed(_) => ITEM_EXECUTED,
            Self::Canceled(_) => ITEM_CANCELED,
        }
    }

    /// The message announcing it, derived from the stored product event that recorded
    /// the decision.
    pub fn envelope(&self, event: &FeedEvent) -> Envelope {
        match self {
            Self::Executed(executed) => envelope_of(event, ITEM_EXECUTED, VERSION, executed),
            Self::Canceled(canceled) => envelope_of(event, ITEM_CANCELED, VERSION, canceled),
        }
    }

    /// Reads an outcome from a consumed envelope (already checked by
    /// [`Envelope::parse`]): version [`VERSION`], aggregate type `Product`, a known
    /// message type, its payload's fields by their domain types, a revision from 1 to
    /// [`MAX_SEQUENCE`] (a forged huge one would make the order ignore every real
    /// outcome of the item), and a reason for a canceled item.
    pub fn decode(envelope: &Envelope) -> Result<Self, InvalidEnvelope> {
        expect_version(envelope, VERSION)?;
        expect_aggregate::<Product>(envelope, "a product")?;
        let outcome = match envelope.event_type.as_str() {
            ITEM_EXECUTED => Self::Executed(payload(envelope)?),
            ITEM_CANCELED => {
                // Said apart from serde's "missing field": an outcome without a reason
                // is the likeliest way to get a canceled one wrong.
                if envelope.payload.get("reason").is_none_or(serde_json::Value::is_null) {
                    return Err(InvalidEnvelope::new("payload.reason", format!("{ITEM_CANCELED} without a reason")));
                }
                Self::Canceled(payload(envelope)?)
            }
            other => return Err(InvalidEnvelope::new("eventType", format!("unknown message type {}", quote(other)))),
        };
        let revision = outcome.revision();
        if !(1..=MAX_SEQUENCE).contains(&i64::try_from(revision).unwrap_or(i64::MAX)) {
            return Err(InvalidEnvelope::new(
                "payload.revision",
                format!("must be from 1 to {MAX_SEQUENCE}, got {revision}"),
            ));
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    //! The outcomes' wire form, as the inventory service has published it since the
    //! first release, and reading it back.

    use serde_json::json;

    use super::*;
    use crate::messages::testing::stored;

    fn order_id() -> OrderId {
        "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b".parse().expect("a UUID")
    }

    fn product_id() -> ProductId {
        ProductId::parse("mug").expect("a product id")
    }

    fn quantity(units: u32) -> Quantity {
        Quantity::new(i64::from(units)).expect("a quantity")
    }

    #[test]
    fn an_executed_item_is_pinned_on_the_wire() {
        let outcome = Outcome::Executed(ItemExecuted {
            order_id: order_id(),
            product_id: product_id(),
            quantity: quantity(2),
            revision: 1,
        });
        let event = stored("Product", "mug", 12, "StockReserved", "1.0", json!({}));
        let envelope = outcome.envelope(&event);
        assert_eq!(
            serde_json::to_value(&envelope).expect("encodes"),
            json!({
                "eventId": "01234567-89ab-cdef-0123-456789abcdef", "aggregateType": "Product", "aggregateId": "mug",
                "sequence": 12, "eventType": "OrderItemExecuted", "eventVersion": "1.0",
                "occurredAt": "2024-05-01T10:00:00.000000Z", "correlationId": "checkout-42", "causationId": "req-1",
                "payload": {"orderId": "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b", "productId": "mug", "quantity": 2, "revision": 1},
            })
        );
        assert_eq!(Outcome::decode(&envelope), Ok(outcome), "read back as published");
    }

    #[test]
    fn a_canceled_item_is_pinned_on_the_wire_with_its_reason_and_what_was_available() {
        let outcome = Outcome::Canceled(ItemCanceled {
            order_id: order_id(),
            product_id: product_id(),
            quantity: quantity(5),
            revision: 3,
            reason: RejectionReason::InsufficientStock,
            available: 4,
        });
        let envelope = outcome.envelope(&stored("Product", "mug", 13, "ReservationRejected", "1.0", json!({})));
        assert_eq!((envelope.event_type.as_str(), envelope.event_version.as_str()), ("OrderItemCanceled", "1.0"));
        assert_eq!(
            envelope.payload,
            json!({"orderId": "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b", "productId": "mug", "quantity": 5, "revision": 3,
                   "reason": "INSUFFICIENT_STOCK", "available": 4})
        );
        assert_eq!(
            serde_json::to_value(RejectionReason::UnknownProduct).expect("encodes"),
            json!("UNKNOWN_PRODUCT"),
            "the other reason"
        );
        assert_eq!(Outcome::decode(&envelope), Ok(outcome), "read back as published");
    }

    #[test]
    fn the_outcome_version_is_its_own_not_the_stored_events() {
        let outcome = Outcome::Executed(ItemExecuted {
            order_id: order_id(),
            product_id: product_id(),
            quantity: quantity(1),
            revision: 1,
        });
        let envelope = outcome.envelope(&stored("Product", "mug", 2, "StockReserved", "9.0", json!({})));
        assert_eq!(envelope.event_version, VERSION);
    }
}
