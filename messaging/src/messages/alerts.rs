//! Stock alerts, on the alerts topic keyed by product id, for downstream services:
//! a product's available stock fell to its low-stock threshold, ran out, or came back.
//! Published from the product event that recorded the change, under that event's
//! name.

use domain::ProductId;
use domain::inventory::Product;
use eventstore::FeedEvent;
use serde::{Deserialize, Serialize};

use super::{envelope_of, expect_aggregate, expect_version, payload};
use crate::Envelope;
use crate::envelope::{InvalidEnvelope, quote};

/// The version of every alert message.
pub const VERSION: &str = "1.0";

/// What an alert says; its message type is the name of the product event it comes
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// `LowStockReached`: available stock fell to the low-stock threshold or below.
    LowStockReached,
    /// `OutOfStock`: nothing left.
    OutOfStock,
    /// `BackInStock`: stock is available again after running out.
    BackInStock,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [Self; 3] = [Self::LowStockReached, Self::OutOfStock, Self::BackInStock];

    /// Its message type.
    pub fn message_type(self) -> &'static str {
        match self {
            Self::LowStockReached => "LowStockReached",
            Self::OutOfStock => "OutOfStock",
            Self::BackInStock => "BackInStock",
        }
    }
}

/// The payload of every alert: the product's available stock after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockLevel {
    /// The product.
    pub product_id: ProductId,
    /// Units available (0 when out of stock).
    pub available: u64,
}

/// One alert message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAlert {
    /// What it says.
    pub kind: AlertKind,
    /// The stock it says it about.
    pub level: StockLevel,
}

impl StockAlert {
    /// The message, derived from the stored product event that recorded the change.
    pub fn envelope(&self, event: &FeedEvent) -> Envelope {
        envelope_of(event, self.kind.message_type(), VERSION, &self.level)
    }

    /// Reads an alert from a consumed envelope (already checked by
    /// [`Envelope::parse`]): version [`VERSION`], aggregate type `Product`, a known
    /// message type and its payload's fields by their domain types.
    pub fn decode(envelope: &Envelope) -> Result<Self, InvalidEnvelope> {
        expect_version(envelope, VERSION)?;
        expect_aggregate::<Product>(envelope, "a product")?;
        let kind =
            AlertKind::ALL.into_iter().find(|kind| kind.message_type() == envelope.event_type).ok_or_else(|| {
                InvalidEnvelope::new("eventType", format!("unknown message type {}", quote(&envelope.event_type)))
            })?;
        Ok(Self { kind, level: payload(envelope)? })
    }
}

#[cfg(test)]
mod tests {
    //! The alerts' wire form, as the inventory service has published it since the
    //! first release.

    use serde_json::json;

    use super::*;
    use crate::messages::testing::stored;

    #[test]
    fn every_alert_is_pinned_on_the_wire_under_the_name_of_its_event() {
        for (kind, name, available) in [
            (AlertKind::LowStockReached, "LowStockReached", 3),
            (AlertKind::OutOfStock, "OutOfStock", 0),
            (AlertKind::BackInStock, "BackInStock", 7),
        ] {
            let alert = StockAlert {
                kind,
                level: StockLevel { product_id: ProductId::parse("mug").expect("an id"), available },
            };
            let event = stored("Product", "mug", 4, name, "1.0", json!({}));
            let envelope = alert.envelope(&event);
            assert_eq!(
                serde_json::to_value(&envelope).expect("encodes"),
                json!({
                    "eventId": "01234567-89ab-cdef-0123-456789abcdef", "aggregateType": "Product", "aggregateId": "mug",
                    "sequence": 4, "eventType": name, "eventVersion": "1.0",
                    "occurredAt": "2024-05-01T10:00:00.000000Z", "correlationId": "checkout-42", "causationId": "req-1",
                    "payload": {"productId": "mug", "available": available},
                }),
                "{name}"
            );
            assert_eq!(StockAlert::decode(&envelope), Ok(alert), "{name} read back as published");
        }
    }

    #[test]
    fn an_alert_of_an_unknown_kind_or_without_its_level_is_refused_naming_the_field() {
        let alert = StockAlert {
            kind: AlertKind::OutOfStock,
            level: StockLevel { product_id: ProductId::parse("mug").expect("an id"), available: 0 },
        };
        let published = alert.envelope(&stored("Product", "mug", 4, "OutOfStock", "1.0", json!({})));
        let cases = [
            ("an unknown kind", Envelope { event_type: "StockTeleported".into(), ..published.clone() }, "eventType"),
            ("no level", Envelope { payload: json!({"productId": "mug"}), ..published.clone() }, "payload"),
            ("an order event", Envelope { aggregate_type: "Order".into(), ..published.clone() }, "aggregateType"),
            ("a newer version", Envelope { event_version: "2.0".into(), ..published }, "eventVersion"),
        ];
        for (label, envelope, field) in cases {
            let refused = StockAlert::decode(&envelope).expect_err(label);
            assert_eq!(refused.field, field, "[{label}] {refused}");
        }
    }
}
