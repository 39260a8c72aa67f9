//! One aggregate's history, as auditors read it.

use std::io::{self, Write};

use eventstore::StoredEvent;

use crate::Format;

/// Prints `events` (oldest first) to `out`.
pub fn print(events: &[StoredEvent], format: Format, out: &mut impl Write) -> io::Result<()> {
    match format {
        Format::Json => {
            for event in events {
                serde_json::to_writer(&mut *out, event)?;
                writeln!(out)?;
            }
        }
        Format::Table => {
            let header = ["#", "event", "version", "recorded at", "actor", "correlation id", "causation id", "payload"];
            let table = crate::table(
                header,
                events.iter().map(|event| {
                    [
                        event.sequence.to_string(),
                        event.event_type.clone(),
                        event.event_version.clone(),
                        event.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        event.actor.clone().unwrap_or_default(),
                        event.correlation_id.clone().unwrap_or_default(),
                        event.causation_id.clone().unwrap_or_default(),
                        event.payload.to_string(),
                    ]
                }),
            );
            writeln!(out, "{table}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn event(sequence: i64, event_type: &str) -> StoredEvent {
        StoredEvent {
            sequence,
            event_type: event_type.to_owned(),
            event_version: "1.0".to_owned(),
            event_id: uuid::Uuid::nil(),
            occurred_at: Some("2026-12-01T10:00:00Z".to_owned()),
            recorded_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).single().expect("time"),
            correlation_id: Some("corr-1".to_owned()),
            causation_id: Some("req-1".to_owned()),
            actor: Some("oms-http".to_owned()),
            payload: json!({"userId": "u-1"}),
        }
    }

    #[test]
    fn json_lines_are_one_parsable_event_per_line() {
        let mut out = Vec::new();
        print(&[event(1, "OrderPlaced"), event(2, "OrderCanceled")], Format::Json, &mut out).expect("printed");
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0]["sequence"].clone(), lines[1]["eventType"].clone()), (json!(1), json!("OrderCanceled")));
        assert_eq!(lines[0]["correlationId"], "corr-1");
    }

    #[test]
    fn the_table_shows_every_event_with_its_audit_columns() {
        let mut out = Vec::new();
        print(&[event(1, "OrderPlaced")], Format::Table, &mut out).expect("printed");
        let text = String::from_utf8(out).expect("utf-8");
        for expected in
            ["OrderPlaced", "2026-12-01T10:00:00.000Z", "oms-http", "corr-1", "req-1", r#"{"userId":"u-1"}"#]
        {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}
