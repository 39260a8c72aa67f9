//! The JSON message every topic carries, and how it is built from a stored event.

use eventstore::FeedEvent;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The message body on every topic (DESIGN.md, "Kafka topics").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Unique id of the fact; consumers may deduplicate on it.
    pub event_id: Uuid,
    /// `Order`, `Product`.
    pub aggregate_type: String,
    /// The aggregate's id (also the key, for per-aggregate topics).
    pub aggregate_id: String,
    /// The event's place in its aggregate's stream.
    pub sequence: i64,
    /// The message type, e.g. `OrderPlaced`.
    pub event_type: String,
    /// The payload's schema version.
    pub event_version: String,
    /// When the command that produced it was accepted (RFC 3339).
    pub occurred_at: String,
    /// Ties together everything that follows from one customer request.
    pub correlation_id: String,
    /// What directly caused it.
    pub causation_id: String,
    /// The fields.
    pub payload: Value,
}

impl Envelope {
    /// The envelope of a stored event, with `event_type` and `payload` as given.
    pub fn from_feed(event: &FeedEvent, event_type: impl Into<String>, payload: Value) -> Self {
        let field = |key: &str| event.metadata_field(key).unwrap_or_default().to_owned();
        Self {
            event_id: event.event_id,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            event_type: event_type.into(),
            event_version: event.event_version.clone(),
            occurred_at: event.metadata_field("occurred_at").map_or_else(|| event.recorded_at.to_rfc3339(), str::to_owned),
            correlation_id: field("correlation_id"),
            causation_id: field("causation_id"),
            payload,
        }
    }

    /// The headers that let a consumer route and trace without parsing the body.
    pub fn headers(&self) -> OwnedHeaders {
        OwnedHeaders::new()
            .insert(Header { key: "correlation-id", value: Some(self.correlation_id.as_bytes()) })
            .insert(Header { key: "causation-id", value: Some(self.causation_id.as_bytes()) })
            .insert(Header { key: "event-id", value: Some(self.event_id.to_string().as_bytes()) })
            .insert(Header { key: "event-type", value: Some(self.event_type.as_bytes()) })
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// The topic.
    pub topic: String,
    /// The key: the id whose messages must stay in order.
    pub key: String,
    /// The body.
    pub envelope: Envelope,
}

/// The value of header `name`, as text.
pub fn header<'a>(headers: Option<&'a rdkafka::message::BorrowedHeaders>, name: &str) -> Option<&'a str> {
    headers?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
