//! What every event records besides its payload.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

const CORRELATION_ID: &str = "correlation_id";
const CAUSATION_ID: &str = "causation_id";
const ACTOR: &str = "actor";
const OCCURRED_AT: &str = "occurred_at";
const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// The unique index (migrations) that refuses a second event of the same kind with the
/// same idempotency key on one aggregate.
pub const IDEMPOTENCY_INDEX: &str = "events_idempotency_key";

/// Context stored with the events of one command.
///
/// `occurred_at` is taken when the command is accepted and travels with the event, so
/// read models built from events never need a clock and rebuild to the same result.
/// `trace_headers` keep the trace the command ran in, so whoever handles the events
/// later (the outbox relay, and the consumers behind it) continues that trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    /// Shared by everything that follows from one customer request, across services.
    pub correlation_id: String,
    /// The id of what directly caused these events: an HTTP request id or an event id.
    pub causation_id: String,
    /// Who or what issued the command, e.g. `http` or `saga`.
    pub actor: String,
    /// When the command was accepted.
    pub occurred_at: DateTime<Utc>,
    /// The W3C trace context (`traceparent`, and `tracestate` when there is one) of
    /// the span the command ran in; empty when no trace was being recorded. Stored
    /// under the header names, and only when present: metadata written before it
    /// existed reads back with none.
    pub trace_headers: Vec<(String, String)>,
    /// The client's `Idempotency-Key` of a write that must apply once per aggregate
    /// (restocks, adjustments); stored only when given.
    pub idempotency_key: Option<String>,
}

/// Stored metadata that lacks a key or holds an unreadable time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event metadata {0}")]
pub struct MetadataError(String);

impl EventMetadata {
    /// Metadata for a command caused by `causation_id` within `correlation_id`, now, in
    /// the trace of the current `tracing` span (see [`telemetry::current_trace_headers`]):
    /// built where the command is decided, e.g. in a request's handler, it keeps the
    /// request's trace.
    pub fn new(correlation_id: impl Into<String>, causation_id: impl Into<String>, actor: impl Into<String>) -> Self {
        Self {
            correlation_id: correlation_id.into(),
            causation_id: causation_id.into(),
            actor: actor.into(),
            occurred_at: Utc::now(),
            trace_headers: telemetry::current_trace_headers(),
            idempotency_key: None,
        }
    }

    /// The same metadata carrying a client's idempotency key.
    pub fn with_idempotency_key(mut self, key: Option<String>) -> Self {
        self.idempotency_key = key;
        self
    }

    /// The same metadata in the trace `trace_headers` (W3C header name and value).
    pub fn with_trace_headers(mut self, trace_headers: Vec<(String, String)>) -> Self {
        self.trace_headers = trace_headers;
        self
    }

    /// The key/value form cqrs-es stores.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (CORRELATION_ID.to_owned(), self.correlation_id.clone()),
            (CAUSATION_ID.to_owned(), self.causation_id.clone()),
            (ACTOR.to_owned(), self.actor.clone()),
            (OCCURRED_AT.to_owned(), self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        ]);
        // Only the W3C names: they cannot collide with the keys above.
        let trace = self.trace_headers.iter().filter(|(name, _)| telemetry::TRACE_HEADERS.contains(&name.as_str()));
        map.extend(trace.cloned());
        if let Some(key) = &self.idempotency_key {
            map.insert(IDEMPOTENCY_KEY.to_owned(), key.clone());
        }
        map
    }

    /// Reads metadata back from its stored form.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, MetadataError> {
        let get = |key: &str| map.get(key).cloned().ok_or_else(|| MetadataError(format!("lacks '{key}'")));
        Ok(Self {
            correlation_id: get(CORRELATION_ID)?,
            causation_id: get(CAUSATION_ID)?,
            actor: get(ACTOR)?,
            occurred_at: Self::occurred_at_in(map)?,
            trace_headers: trace_headers_in(|key| map.get(key).map(String::as_str)),
            idempotency_key: map.get(IDEMPOTENCY_KEY).cloned(),
        })
    }

    /// Only the time the command was accepted, from the stored form: what folds need,
    /// without copying the rest (rebuilds read it for every event).
    pub fn occurred_at_in(map: &HashMap<String, String>) -> Result<DateTime<Utc>, MetadataError> {
        let occurred_at = map.get(OCCURRED_AT).ok_or_else(|| MetadataError(format!("lacks '{OCCURRED_AT}'")))?;
        DateTime::parse_from_rfc3339(occurred_at)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|e| MetadataError(format!("has an unreadable occurred_at '{occurred_at}': {e}")))
    }
}

/// The trace headers among stored metadata, read through `get(key)`, in W3C order.
pub(crate) fn trace_headers_in<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Vec<(String, String)> {
    telemetry::TRACE_HEADERS
        .iter()
        .filter_map(|name| get(name).map(|value| ((*name).to_owned(), value.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_survives_its_stored_form() {
        let metadata = EventMetadata::new("corr", "cause", "http");
        let back = EventMetadata::from_map(&metadata.to_map()).unwrap();
        assert_eq!(back.correlation_id, "corr");
        assert_eq!(back.causation_id, "cause");
        assert_eq!(back.actor, "http");
        // Stored with microseconds, like PostgreSQL timestamps.
        assert_eq!(back.occurred_at.timestamp_micros(), metadata.occurred_at.timestamp_micros());
    }

    #[test]
    fn trace_headers_survive_the_stored_form_and_metadata_without_them_reads_with_none() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let metadata = EventMetadata::new("corr", "cause", "http").with_trace_headers(vec![
            ("traceparent".into(), traceparent.into()),
            ("tracestate".into(), "vendor=1".into()),
        ]);
        let stored = metadata.to_map();
        assert_eq!(stored.get("traceparent").map(String::as_str), Some(traceparent), "stored under the W3C name");
        assert_eq!(EventMetadata::from_map(&stored).unwrap().trace_headers, metadata.trace_headers);

        // What releases before the trace headers stored: exactly the four keys.
        let old: HashMap<String, String> = [
            ("correlation_id", "c"),
            ("causation_id", "k"),
            ("actor", "a"),
            ("occurred_at", "2024-05-01T10:00:00.000000Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let read = EventMetadata::from_map(&old).unwrap();
        assert!(read.trace_headers.is_empty(), "{read:?}");
        assert_eq!(read.to_map(), old, "and it is written back as it was");
    }

    #[test]
    fn only_w3c_trace_headers_are_stored() {
        let metadata = EventMetadata::new("c", "c", "a").with_trace_headers(vec![("actor".into(), "spoofed".into())]);
        assert_eq!(metadata.to_map().get("actor").map(String::as_str), Some("a"));
    }

    #[test]
    fn metadata_without_a_key_is_an_error_naming_it() {
        let mut map = EventMetadata::new("c", "c", "a").to_map();
        map.remove("actor");
        assert_eq!(EventMetadata::from_map(&map).unwrap_err().to_string(), "event metadata lacks 'actor'");
    }
}
