//! Old versions of order events, read as today's.
//!
//! Stored events are never rewritten: they are history. When an event's fields change,
//! the event gets a new version, and an upcaster here turns a stored payload of the
//! old version into the new one whenever it is read (the event store, the feed, the
//! consumers of published events). Every upcaster is pure JSON → JSON.
//!
//! | event | version | change |
//! | --- | --- | --- |
//! | `OrderPlaced` | 2.0 | `idempotencyKey` (string or `null`); 1.0 events get `null` |
//! | `OrderStatusChanged` | 2.0 | `items` (products whose reservations are shipped); 1.0 events get `[]` |
//! | `OrderCanceled` | 2.0 | `reason`; 1.0 events (customer cancellations) get `CANCELED_BY_CUSTOMER` |

use std::str::FromStr;
use std::sync::LazyLock;

use cqrs_es::persist::{EventUpcaster, SemanticVersion, SemanticVersionEventUpcaster, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::{Value, json};

use super::{Order, OrderEvent};

/// The upcasters of order events, oldest version first: applied in this order, they
/// bring a stored event of any past version to the current one.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![
        Box::new(SemanticVersionEventUpcaster::new("OrderPlaced", "2.0", Box::new(order_placed_1_to_2))),
        Box::new(SemanticVersionEventUpcaster::new("OrderStatusChanged", "2.0", Box::new(status_changed_1_to_2))),
        Box::new(SemanticVersionEventUpcaster::new("OrderCanceled", "2.0", Box::new(order_canceled_1_to_2))),
    ]
}

/// `OrderPlaced` 1.0 → 2.0. The key an order was placed with was not recorded before
/// 2.0: it is unknown, `null`. `payload` is the stored, externally tagged form
/// (`{"OrderPlaced": {...}}`); anything else is left for decoding to refuse.
fn order_placed_1_to_2(payload: Value) -> Value {
    with_default(payload, "OrderPlaced", "idempotencyKey", Value::Null)
}

/// `OrderStatusChanged` 1.0 → 2.0. A 1.0 shipment names no products: it reads with
/// none, and the inventory service ships whatever the order still holds.
fn status_changed_1_to_2(payload: Value) -> Value {
    with_default(payload, "OrderStatusChanged", "items", json!([]))
}

/// `OrderCanceled` 1.0 → 2.0. Only customers canceled orders before 2.0.
fn order_canceled_1_to_2(payload: Value) -> Value {
    with_default(payload, "OrderCanceled", "reason", json!("CANCELED_BY_CUSTOMER"))
}

/// Adds `field` to the fields of a stored `{event_type: {...}}` payload when it lacks
/// it; anything else is left for decoding to refuse.
fn with_default(mut payload: Value, event_type: &str, field: &str, value: Value) -> Value {
    if let Some(fields) = payload.get_mut(event_type).and_then(Value::as_object_mut) {
        fields.entry(field).or_insert(value);
    }
    payload
}

/// Why an order event from elsewhere (another service, another release) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnreadableEvent {
    /// A version this code neither writes nor upcasts, e.g. one of a newer release: its
    /// fields may mean something else, so it is refused rather than guessed at.
    #[error("{event_type} version {event_version} is not supported")]
    UnsupportedVersion {
        /// The event type.
        event_type: String,
        /// The version it came with.
        event_version: String,
    },
    /// An unknown event type, or fields that do not fit the type at that version.
    #[error("{event_type} {event_version} does not decode: {reason}")]
    Malformed {
        /// The event type.
        event_type: String,
        /// The version it came with.
        event_version: String,
        /// What serde said.
        reason: String,
    },
}

static UPCASTERS: LazyLock<Vec<Box<dyn EventUpcaster>>> = LazyLock::new(upcasters);

/// Reads an order event given as its type, version and fields (the payload without
/// its enum tag, as the Kafka envelope carries it). Past versions are upcast first,
/// with the same [`upcasters`] as the event store; a version that is not, after
/// upcasting, the one this code writes for that type is refused.
pub fn decode_event(event_type: &str, event_version: &str, fields: Value) -> Result<OrderEvent, UnreadableEvent> {
    let received = SerializedEvent::new(
        String::new(),
        0,
        Order::TYPE.to_owned(),
        event_type.to_owned(),
        event_version.to_owned(),
        json!({ event_type: fields }),
        Value::Null,
    );
    let current = UPCASTERS.iter().fold(received, |event, upcaster| {
        if upcaster.can_upcast(&event.event_type, &event.event_version) { upcaster.upcast(event) } else { event }
    });
    let event: OrderEvent = serde_json::from_value(current.payload).map_err(|e| UnreadableEvent::Malformed {
        event_type: event_type.to_owned(),
        event_version: event_version.to_owned(),
        reason: e.to_string(),
    })?;
    if !same_version(&current.event_version, &event.event_version()) {
        return Err(UnreadableEvent::UnsupportedVersion {
            event_type: event_type.to_owned(),
            event_version: event_version.to_owned(),
        });
    }
    Ok(event)
}

/// Versions compared as semantic versions: an upcaster writes "2.0.0" for "2.0".
fn same_version(a: &str, b: &str) -> bool {
    match (SemanticVersion::from_str(a), SemanticVersion::from_str(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
