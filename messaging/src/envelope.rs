//! The JSON message every topic carries, how it is built from a stored event, and
//! the headers beside it: ids for routing and tracing without parsing the body, and
//! the W3C trace context, so one order's trace spans both services.

use std::time::Duration;

use eventstore::FeedEvent;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::KafkaSettings;
use crate::producer::ReplaceableProducer;

/// The Kafka header that marks a message as a re-request: the OMS republishing the
/// order event that made an item pending, because the item is still pending long
/// after (value `1`).
pub const RE_REQUEST_HEADER: &str = "re-request";

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
            occurred_at: event
                .metadata_field("occurred_at")
                .map_or_else(|| event.recorded_at.to_rfc3339(), str::to_owned),
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

impl OutgoingMessage {
    /// Sends it as the relay does (the envelope as JSON, its id headers, the trace
    /// headers `trace` its event kept), plus the headers `extra`, through `producer`,
    /// and waits up to `timeout` for the broker's acknowledgement. A failed send is
    /// recovered from as the relay's are ([`ReplaceableProducer::recover_from`], with
    /// `settings`) before its error is returned. For the few messages sent beside the
    /// relay: re-requests and re-announcements of what the relay published before.
    pub async fn send(
        &self,
        producer: &ReplaceableProducer,
        settings: &KafkaSettings,
        trace: &[(String, String)],
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let body = serde_json::to_vec(&self.envelope)?;
        let headers = extra.iter().fold(with_trace_headers(self.envelope.headers(), trace), |headers, (key, value)| {
            headers.insert(Header { key, value: Some(value.as_bytes()) })
        });
        let record = FutureRecord::to(&self.topic).key(&self.key).payload(&body).headers(headers);
        let used = producer.current();
        if let Err((error, _)) = used.producer.send(record, Timeout::After(timeout)).await {
            producer.recover_from(&used, &error, settings, &[&self.topic]).await;
            return Err(anyhow::Error::from(error).context(format!("publishing to {}", self.topic)));
        }
        Ok(())
    }
}

/// Headers holding `pairs` (name, value), in order: e.g. for building an
/// [`crate::IncomingMessage`] in a test without naming `rdkafka`.
pub fn owned_headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    pairs.iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header { key, value: Some(value.as_bytes()) })
    })
}

/// The value of header `name`, as text.
pub fn header<'a>(headers: Option<&'a rdkafka::message::BorrowedHeaders>, name: &str) -> Option<&'a str> {
    headers?.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
}

/// `headers` plus the W3C trace context (`traceparent`, `tracestate`) of the current
/// `tracing` span, so the consumer's work joins the producer's trace. Unchanged when
/// no trace is being recorded.
///
/// For a publisher that runs inside the span that caused the message. The outbox
/// relay does not: it sends what a request committed earlier, so it should use
/// [`with_trace_headers`] with the headers kept (by `telemetry::current_trace_headers`)
/// when the event was recorded.
pub fn with_trace_context(headers: OwnedHeaders) -> OwnedHeaders {
    with_trace_headers(headers, &telemetry::current_trace_headers())
}

/// `headers` plus the trace headers `trace` (name, value), e.g. those kept in an
/// event's metadata when its command ran.
pub fn with_trace_headers(headers: OwnedHeaders, trace: &[(String, String)]) -> OwnedHeaders {
    trace.iter().fold(headers, |headers, (key, value)| headers.insert(Header { key, value: Some(value.as_bytes()) }))
}

/// The trace context a message's headers carry; empty when they carry none.
pub fn trace_context<H: Headers + ?Sized>(headers: Option<&H>) -> telemetry::TraceContext {
    telemetry::extract_trace_context(|name| {
        let headers = headers?;
        (0..headers.count())
            .map(|index| headers.get(index))
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    })
}

/// Makes `span` (the span handling a message) a child of the trace the message's
/// headers carry, if any.
pub fn follow_trace<H: Headers + ?Sized>(span: &tracing::Span, headers: Option<&H>) {
    telemetry::set_parent(span, trace_context(headers));
}

/// The largest message body a consumer reads. The largest legitimate message, an
/// order event of 100 items with 64-character product ids, is about 10 kB; anything
/// far larger is not ours and would be copied on (metadata, outcomes) if accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The largest `sequence` accepted. Consumers use it as a revision that newer requests
/// must exceed (the saga's reservations, the OMS's item outcomes), so one forged huge
/// value would make a product ignore every real request of that order forever. No
/// aggregate of ours comes near a million events (an order has at most 100 items).
pub const MAX_SEQUENCE: i64 = 1_000_000;

/// The longest `aggregateType`, `eventType` or `eventVersion` accepted.
pub const MAX_NAME_LEN: usize = 64;

/// How much of an offending value a reason quotes at most, in characters.
const QUOTE_CHARS: usize = 40;

/// Why a consumed message is not an envelope we accept, or not a message we read
/// (see [`crate::messages`]); the message names the field and quotes at most a short prefix of the offending value, so the reason stays
/// small enough to log, park and send on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidEnvelope {
    /// The field (as on the wire, e.g. `correlationId`, `payload.reason`), or `message`.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl InvalidEnvelope {
    /// `field` is refused because of `problem`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self { field, problem: problem.into() }
    }
}

/// At most [`QUOTE_CHARS`] characters of `value`, control characters escaped, with an
/// ellipsis and the full length when cut: safe to put into a reason.
pub fn quote(value: &str) -> String {
    let mut quoted: String = value
        .chars()
        .take(QUOTE_CHARS)
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect();
    let length = value.chars().count();
    if length > QUOTE_CHARS {
        quoted.push_str(&format!("… ({length} characters)"));
    }
    format!("\"{quoted}\"")
}

/// `text` (e.g. a parser's error message, which may quote input) cut to a bounded
/// length, control characters escaped.
pub fn bounded(text: &str) -> String {
    const MAX_CHARS: usize = 300;
    let mut bounded: String = text
        .chars()
        .take(MAX_CHARS)
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect();
    if text.chars().count() > MAX_CHARS {
        bounded.push('…');
    }
    bounded
}

impl Envelope {
    /// Reads a consumed message's body as an envelope and checks every field as the
    /// HTTP side checks its input (see [`Envelope::validate`]): whatever a consumer takes
    /// from it is then safe to store and to copy into the messages that follow.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidEnvelope> {
        if body.len() > MAX_BODY_BYTES {
            return Err(InvalidEnvelope::new(
                "message",
                format!("{} bytes, more than the {MAX_BODY_BYTES} accepted", body.len()),
            ));
        }
        // The path names the field a value does not fit (`sequence`, `eventId`).
        let envelope: Self = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
            .map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." { "message".to_owned() } else { field };
                InvalidEnvelope::new(
                    "message",
                    format!("not an envelope: {}: {}", quote(&field), bounded(&e.inner().to_string())),
                )
            })?;
        envelope.validate()?;
        Ok(envelope)
    }

    /// Checks the fields every consumer relies on: a non-nil event id; aggregate type,
    /// event type and version short names; an aggregate id, correlation id and
    /// causation id by the rule for ids ([`telemetry::is_usable_id`]); a sequence from 1
    /// to [`MAX_SEQUENCE`]; an RFC 3339 time; an object payload. What the payload's
    /// fields must be is the consumer's to check (domain types).
    pub fn validate(&self) -> Result<(), InvalidEnvelope> {
        if self.event_id.is_nil() {
            return Err(InvalidEnvelope::new("eventId", "must not be the nil UUID"));
        }
        name("aggregateType", &self.aggregate_type, |c| c.is_ascii_alphanumeric())?;
        id("aggregateId", &self.aggregate_id)?;
        if !(1..=MAX_SEQUENCE).contains(&self.sequence) {
            return Err(InvalidEnvelope::new(
                "sequence",
                format!("must be from 1 to {MAX_SEQUENCE}, got {}", self.sequence),
            ));
        }
        name("eventType", &self.event_type, |c| c.is_ascii_alphanumeric())?;
        name("eventVersion", &self.event_version, |c| c.is_ascii_digit() || c == '.')?;
        if self.occurred_at.len() > MAX_NAME_LEN || chrono::DateTime::parse_from_rfc3339(&self.occurred_at).is_err() {
            return Err(InvalidEnvelope::new(
                "occurredAt",
                format!("must be an RFC 3339 time, got {}", quote(&self.occurred_at)),
            ));
        }
        id("correlationId", &self.correlation_id)?;
        id("causationId", &self.causation_id)?;
        if !self.payload.is_object() {
            return Err(InvalidEnvelope::new("payload", "must be a JSON object"));
        }
        Ok(())
    }
}

/// A name field: 1 to [`MAX_NAME_LEN`] characters, each `allowed`.
fn name(field: &'static str, value: &str, allowed: fn(char) -> bool) -> Result<(), InvalidEnvelope> {
    if value.is_empty() || value.len() > MAX_NAME_LEN || !value.chars().all(allowed) {
        return Err(InvalidEnvelope::new(
            field,
            format!("must be 1 to {MAX_NAME_LEN} letters, digits or dots, got {}", quote(value)),
        ));
    }
    Ok(())
}

/// An id field, by the rule for ids.
fn id(field: &'static str, value: &str) -> Result<(), InvalidEnvelope> {
    if !telemetry::is_usable_id(value) {
        let max = telemetry::ids::MAX_ID_LEN;
        return Err(InvalidEnvelope::new(
            field,
            format!("must be 1 to {max} visible ASCII characters, got {}", quote(value)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;
    use rdkafka::message::{Message, OwnedMessage, Timestamp};
    use telemetry::testing::with_tracing;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::*;

    /// What a consumer receives when `headers` were sent.
    fn received(headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(b"key".to_vec()),
            "t".to_owned(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(headers),
        )
    }

    fn trace_id(span: &tracing::Span) -> opentelemetry::trace::TraceId {
        span.context().span().span_context().trace_id()
    }

    #[test]
    fn the_trace_context_travels_in_the_headers_beside_the_ids() {
        with_tracing(|| {
            let publish = tracing::info_span!("publish");
            let headers = publish.in_scope(|| {
                with_trace_context(OwnedHeaders::new().insert(Header { key: "correlation-id", value: Some("c-1") }))
            });
            let message = received(headers);

            let names: Vec<&str> = message.headers().map(|h| h.iter().map(|h| h.key).collect()).unwrap_or_default();
            assert_eq!(names, ["correlation-id", "traceparent"], "the ids stay, the trace context is added");
            let traceparent = header(message.headers().map(|h| h.as_borrowed()), "traceparent").expect("traceparent");
            assert!(traceparent.starts_with(&format!("00-{}-", trace_id(&publish))), "{traceparent}");

            let handle = tracing::info_span!("handle");
            follow_trace(&handle, message.headers());
            assert_eq!(trace_id(&handle), trace_id(&publish), "the consumer's span is in the producer's trace");
        });
    }

    #[test]
    fn trace_headers_kept_at_command_time_are_sent_by_a_later_publisher() {
        with_tracing(|| {
            let request = tracing::info_span!("request");
            let kept = request.in_scope(telemetry::current_trace_headers);
            let relay = tracing::info_span!("relay");
            let headers = relay.in_scope(|| with_trace_headers(OwnedHeaders::new(), &kept));

            let handle = tracing::info_span!("handle");
            follow_trace(&handle, received(headers).headers());
            assert_eq!(trace_id(&handle), trace_id(&request), "the request's trace, not the relay's");
            assert_ne!(trace_id(&relay), trace_id(&request), "the relay runs in a trace of its own");
        });
    }

    #[test]
    fn a_message_without_trace_headers_starts_no_trace_of_its_own() {
        with_tracing(|| {
            let message =
                received(OwnedHeaders::new().insert(Header { key: "traceparent", value: Some("not a traceparent") }));
            assert!(!trace_context(message.headers()).span().span_context().is_valid());
            let no_headers: Option<&OwnedHeaders> = None;
            assert!(!trace_context(no_headers).span().span_context().is_valid());
        });
    }

    #[test]
    fn without_a_recorded_trace_the_headers_are_unchanged() {
        let _span = tracing::info_span!("untraced").entered();
        let headers = with_trace_context(OwnedHeaders::new().insert(Header { key: "event-id", value: Some("e-1") }));
        assert_eq!(headers.count(), 1);
    }
}
