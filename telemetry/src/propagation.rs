//! Carrying a trace across a process boundary (HTTP, Kafka) as W3C Trace Context
//! headers (`traceparent`, `tracestate`), whatever the carrier: callers pass a way
//! to read or write one header.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A trace context: which trace, and which span in it, something belongs to.
pub use opentelemetry::Context as TraceContext;

/// The names of the W3C Trace Context headers, the only ones
/// [`current_trace_headers`] writes: whoever keeps trace headers may keep just these.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Writes the trace context of the current `tracing` span through `set(name,
/// value)`, skipping empty values (no `tracestate` when there is none). Writes
/// nothing when no trace is being recorded (no exporter set up).
pub fn inject_trace_context(mut set: impl FnMut(&str, String)) {
    let context = tracing::Span::current().context();
    let non_empty = |name: &str, value: String| {
        if !value.is_empty() {
            set(name, value);
        }
    };
    TraceContextPropagator::new().inject_context(&context, &mut SetWith(non_empty));
}

/// The current span's trace context as W3C header pairs (`traceparent`, and
/// `tracestate` when there is one); empty when no trace is being recorded. Keep
/// them with what the span causes but sends later (an event's metadata, for the
/// outbox relay) to continue the trace from there.
pub fn current_trace_headers() -> Vec<(String, String)> {
    let mut headers = Vec::new();
    inject_trace_context(|name, value| headers.push((name.to_owned(), value)));
    headers
}

/// Reads a trace context through `get(name)`; an empty context when the headers
/// carry none, or a malformed one.
pub fn extract_trace_context<'a>(get: impl Fn(&str) -> Option<&'a str>) -> TraceContext {
    TraceContextPropagator::new().extract(&GetWith(get, std::marker::PhantomData))
}

/// Makes `span` a child of the trace in `context` (a no-op for an empty context or
/// when no trace is being recorded).
pub fn set_parent(span: &tracing::Span, context: TraceContext) {
    use opentelemetry::trace::TraceContextExt;
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

struct SetWith<F>(F);

impl<F: FnMut(&str, String)> Injector for SetWith<F> {
    fn set(&mut self, key: &str, value: String) {
        (self.0)(key, value);
    }
}

/// The lifetime ties what `get` returns to the carrier it reads.
struct GetWith<'a, F>(F, std::marker::PhantomData<&'a ()>);

impl<'a, F: Fn(&str) -> Option<&'a str>> Extractor for GetWith<'a, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        TRACE_HEADERS.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::trace::TraceContextExt;

    use super::*;
    use crate::testing::with_tracing;

    #[test]
    fn a_span_context_survives_a_round_trip_through_headers() {
        with_tracing(|| {
            let span = tracing::info_span!("publish");
            let _entered = span.enter();
            let mut headers = HashMap::new();
            inject_trace_context(|name, value| {
                headers.insert(name.to_owned(), value);
            });
            let sent = span.context().span().span_context().clone();
            let traceparent = headers.get("traceparent").expect("a traceparent header");
            assert_eq!(traceparent, &format!("00-{}-{}-01", sent.trace_id(), sent.span_id()), "W3C format, sampled");

            let received = extract_trace_context(|name| headers.get(name).map(String::as_str));
            let received = received.span().span_context().clone();
            assert_eq!((received.trace_id(), received.span_id()), (sent.trace_id(), sent.span_id()));
            assert!(received.is_remote());
        });
    }

    #[test]
    fn a_consumer_span_joins_the_producers_trace() {
        with_tracing(|| {
            let producer = tracing::info_span!("produce");
            let mut headers = HashMap::new();
            producer.in_scope(|| inject_trace_context(|name, value| drop(headers.insert(name.to_owned(), value))));

            let consumer = tracing::info_span!("consume");
            set_parent(&consumer, extract_trace_context(|name| headers.get(name).map(String::as_str)));
            assert_eq!(
                consumer.context().span().span_context().trace_id(),
                producer.context().span().span_context().trace_id(),
                "one trace across the boundary"
            );
        });
    }

    #[test]
    fn missing_or_malformed_headers_give_an_empty_context() {
        for traceparent in [None, Some("garbage"), Some("00-00000000000000000000000000000000-0000000000000000-01")] {
            let context = extract_trace_context(|name| if name == "traceparent" { traceparent } else { None });
            assert!(!context.span().span_context().is_valid(), "{traceparent:?}");
        }
    }

    #[test]
    fn kept_trace_headers_continue_the_trace_later() {
        let (kept, sent) = with_tracing(|| {
            let command = tracing::info_span!("command");
            let kept = command.in_scope(current_trace_headers);
            (kept, command.context().span().span_context().trace_id())
        });
        assert_eq!(kept.len(), 1, "a traceparent, no empty tracestate: {kept:?}");
        let context = extract_trace_context(|name| kept.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()));
        assert_eq!(context.span().span_context().trace_id(), sent);
        assert!(
            tracing::info_span!("elsewhere").in_scope(current_trace_headers).is_empty(),
            "none without a recorded trace"
        );
    }

    #[test]
    fn nothing_is_injected_when_no_trace_is_recorded() {
        let mut headers = HashMap::new();
        let _span = tracing::info_span!("untraced").entered();
        inject_trace_context(|name, value| drop(headers.insert(name.to_owned(), value)));
        assert!(headers.is_empty(), "{headers:?}");
    }
}
