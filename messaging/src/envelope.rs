//! The JSON message every topic carries, how it is built from a stored event, and
//! the headers beside it: ids for routing and tracing without parsing the body, and
//! the W3C trace context, so one order's trace spans both services.

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

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use rdkafka::message::{Message, OwnedMessage, Timestamp};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn with_tracing<T>(f: impl FnOnce() -> T) -> T {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    /// What a consumer receives when `headers` were sent.
    fn received(headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(Some(b"{}".to_vec()), Some(b"key".to_vec()), "t".to_owned(), Timestamp::NotAvailable, 0, 0, Some(headers))
    }

    fn trace_id(span: &tracing::Span) -> opentelemetry::trace::TraceId {
        span.context().span().span_context().trace_id()
    }

    #[test]
    fn the_trace_context_travels_in_the_headers_beside_the_ids() {
        with_tracing(|| {
            let publish = tracing::info_span!("publish");
            let headers = publish.in_scope(|| with_trace_context(OwnedHeaders::new().insert(Header { key: "correlation-id", value: Some("c-1") })));
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
            let message = received(OwnedHeaders::new().insert(Header { key: "traceparent", value: Some("not a traceparent") }));
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
