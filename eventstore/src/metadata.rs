//! What every event records besides its payload.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

const CORRELATION_ID: &str = "correlation_id";
const CAUSATION_ID: &str = "causation_id";
const ACTOR: &str = "actor";
const OCCURRED_AT: &str = "occurred_at";

/// Context stored with the events of one command.
///
/// `occurred_at` is taken when the command is accepted and travels with the event, so
/// read models built from events never need a clock and rebuild to the same result.
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
}

/// Stored metadata that lacks a key or holds an unreadable time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event metadata {0}")]
pub struct MetadataError(String);

impl EventMetadata {
    /// Metadata for a command caused by `causation_id` within `correlation_id`, now.
    pub fn new(correlation_id: impl Into<String>, causation_id: impl Into<String>, actor: impl Into<String>) -> Self {
        Self {
            correlation_id: correlation_id.into(),
            causation_id: causation_id.into(),
            actor: actor.into(),
            occurred_at: Utc::now(),
        }
    }

    /// The key/value form cqrs-es stores.
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            (CORRELATION_ID.to_owned(), self.correlation_id.clone()),
            (CAUSATION_ID.to_owned(), self.causation_id.clone()),
            (ACTOR.to_owned(), self.actor.clone()),
            (OCCURRED_AT.to_owned(), self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        ])
    }

    /// Reads metadata back from its stored form.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, MetadataError> {
        let get = |key: &str| map.get(key).cloned().ok_or_else(|| MetadataError(format!("lacks '{key}'")));
        let occurred_at = get(OCCURRED_AT)?;
        Ok(Self {
            correlation_id: get(CORRELATION_ID)?,
            causation_id: get(CAUSATION_ID)?,
            actor: get(ACTOR)?,
            occurred_at: DateTime::parse_from_rfc3339(&occurred_at)
                .map_err(|e| MetadataError(format!("has an unreadable occurred_at '{occurred_at}': {e}")))?
                .with_timezone(&Utc),
        })
    }
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
    fn metadata_without_a_key_is_an_error_naming_it() {
        let mut map = EventMetadata::new("c", "c", "a").to_map();
        map.remove("actor");
        assert_eq!(EventMetadata::from_map(&map).unwrap_err().to_string(), "event metadata lacks 'actor'");
    }
}
