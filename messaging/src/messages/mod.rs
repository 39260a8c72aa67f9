//! The messages the two services exchange, one type per message: the side that
//! publishes a message and the side that reads it use the same type, and the tests
//! beside each pin its wire form.
//!
//! Every message travels in an [`Envelope`]: `eventType` names the message,
//! `eventVersion` is its payload's version and `payload` its fields (camelCase).
//! A version's fields never change: a change is a new version, and a reader refuses a
//! version it does not know rather than guess at it.
//!
//! | topic (default) | key | message types | payload |
//! | --- | --- | --- | --- |
//! | `oms.order-events` | order id | the order's events as stored, each at its own version ([`order_events`]) | [`domain::order::OrderEvent`]'s fields |
//! | `inventory.order-outcomes` | order id | [`outcomes::ITEM_EXECUTED`], [`outcomes::ITEM_CANCELED`], at [`outcomes::VERSION`] | [`outcomes::ItemExecuted`], [`outcomes::ItemCanceled`] |
//! | `inventory.stock-alerts` | product id | [`alerts::AlertKind`]'s names, at [`alerts::VERSION`] | [`alerts::StockLevel`] |
//!
//! Decoding a consumed message checks every field it takes (domain types, bounds) and
//! names the offending one in its [`InvalidEnvelope`], so that what is unprocessable
//! is parked with a reason that says why.

pub mod alerts;
pub mod order_events;
pub mod outcomes;

use eventstore::{Aggregate, FeedEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Envelope;
use crate::envelope::{InvalidEnvelope, bounded, quote};

/// The envelope of a message derived from the stored `event`: its ids, sequence,
/// times and trace ids, with the message's own type, version and payload.
fn envelope_of(event: &FeedEvent, message_type: &str, version: &str, payload: &impl Serialize) -> Envelope {
    // Our payloads are structs of ids and numbers: they always serialize.
    let payload = serde_json::to_value(payload).unwrap_or(Value::Null);
    Envelope { event_version: version.to_owned(), ..Envelope::from_feed(event, message_type, payload) }
}

/// Refuses a version other than `expected`, naming the message type and version.
fn expect_version(envelope: &Envelope, expected: &str) -> Result<(), InvalidEnvelope> {
    if envelope.event_version != expected {
        return Err(InvalidEnvelope::new(
            "eventVersion",
            format!("{} {} is not supported", quote(&envelope.event_type), quote(&envelope.event_version)),
        ));
    }
    Ok(())
}

/// Refuses an envelope about another aggregate type than `A`'s (`what`: "an order",
/// "a product"), quoting the type it names.
fn expect_aggregate<A: Aggregate>(envelope: &Envelope, what: &str) -> Result<(), InvalidEnvelope> {
    if envelope.aggregate_type != A::TYPE {
        return Err(InvalidEnvelope::new(
            "aggregateType",
            format!("not {what} event: {}", quote(&envelope.aggregate_type)),
        ));
    }
    Ok(())
}

/// The envelope's payload as a `T`; the reason quotes the message type and serde's
/// (bounded) complaint, which names the field.
fn payload<T: DeserializeOwned>(envelope: &Envelope) -> Result<T, InvalidEnvelope> {
    serde_json::from_value(envelope.payload.clone())
        .map_err(|e| InvalidEnvelope::new("payload", format!("{} {}", envelope.event_type, bounded(&e.to_string()))))
}

#[cfg(test)]
mod testing {
    //! Stored events as the feed delivers them, for the pins of the messages derived
    //! from them.

    use std::collections::HashMap;

    use chrono::{TimeZone, Utc};
    use eventstore::{FeedEvent, FeedPosition};
    use serde_json::Value;
    use serde_json::value::RawValue;
    use uuid::Uuid;

    /// A stored event of `aggregate_type` `aggregate_id` at `sequence`, its payload
    /// tagged with `event_type` as postgres-es stores it.
    pub(crate) fn stored(
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
        event_type: &str,
        event_version: &str,
        fields: Value,
    ) -> FeedEvent {
        let tagged = serde_json::json!({ event_type: fields }).to_string();
        FeedEvent {
            position: FeedPosition { transaction_id: 7, global_position: 42 },
            event_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            sequence,
            event_type: event_type.to_owned(),
            event_version: event_version.to_owned(),
            payload: RawValue::from_string(tagged).expect("JSON"),
            metadata: HashMap::from([
                ("correlation_id".to_owned(), "checkout-42".to_owned()),
                ("causation_id".to_owned(), "req-1".to_owned()),
                ("occurred_at".to_owned(), "2024-05-01T10:00:00.000000Z".to_owned()),
            ]),
            recorded_at: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 1).single().expect("a time"),
        }
    }
}
