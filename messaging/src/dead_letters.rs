//! Parking what can never be processed or published as it is, in the service schema's
//! `dead_letters` table (migration 0007), so that the flow goes on and operators can
//! list, inspect and re-drive it (`dlq`).
//!
//! Two sources park: the consumer loop parks a consumed message it can never handle
//! (and also copies it to `<topic>.dlq`), the relay parks a committed event it cannot
//! publish (the event stays in `events`; only its id is kept). Parking is idempotent:
//! the same message or event parked again (after a crash, before its offset or the
//! relay's checkpoint moved) is the same row.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use eventstore::DeadLetterSource;
use rdkafka::message::Headers;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::IncomingMessage;

/// The longest reason stored, in characters.
pub const REASON_MAX_CHARS: usize = 1000;

/// `reason` made fit to store and to put in a header: NUL characters (which
/// PostgreSQL text refuses) become U+FFFD, and it is cut to [`REASON_MAX_CHARS`]
/// characters. A reason may quote the hostile input it is about.
pub fn sanitize_reason(reason: &str) -> String {
    const CUT: &str = "…";
    let mut clean: String = reason.chars().map(|c| if c == '\0' { char::REPLACEMENT_CHARACTER } else { c }).collect();
    if clean.chars().count() > REASON_MAX_CHARS {
        clean = clean.chars().take(REASON_MAX_CHARS - 1).collect();
        clean.push_str(CUT);
    }
    clean
}

/// The headers of `message` as stored: `[{"key": text, "value": base64 or null}]`, in
/// the message's order.
pub fn headers_json(message: &IncomingMessage) -> Value {
    let headers = message.headers.iter().flat_map(|headers| headers.iter());
    Value::Array(headers.map(|header| json!({ "key": header.key.replace('\0', "\u{FFFD}"), "value": header.value.map(|v| BASE64.encode(v)) })).collect())
}

/// Parks a consumed `message` that can never be handled, with `reason` (sanitized
/// here). Its origin is `topic/partition/offset`; the key is stored as the text the
/// consumer received.
pub async fn park_message(pool: &PgPool, message: &IncomingMessage, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dead_letters (source, origin, topic, reason, message_key, payload, headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT DO NOTHING",
    )
    .bind(DeadLetterSource::Consumer.as_str())
    .bind(message.origin())
    .bind(&message.topic)
    .bind(sanitize_reason(reason))
    .bind(message.key.as_ref().map(String::as_bytes))
    .bind(message.payload.as_deref())
    .bind(headers_json(message))
    .execute(pool)
    .await?;
    Ok(())
}

/// Parks the message for `topic` (keyed `key`) of the committed event `event_id` that
/// the relay cannot publish, with `reason` (sanitized here). The event stays in
/// `events`; its origin is its id.
pub async fn park_event(
    pool: &PgPool,
    event_id: Uuid,
    topic: &str,
    key: Option<&str>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dead_letters (source, origin, topic, reason, event_id, message_key)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(DeadLetterSource::Relay.as_str())
    .bind(event_id.to_string())
    .bind(topic)
    .bind(sanitize_reason(reason))
    .bind(event_id)
    .bind(key.map(str::as_bytes))
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_loses_its_nul_characters_and_is_cut_to_the_bound() {
        assert_eq!(sanitize_reason("bad \0 id"), "bad \u{FFFD} id");
        let long = "é".repeat(5000);
        let clean = sanitize_reason(&long);
        assert_eq!(clean.chars().count(), REASON_MAX_CHARS);
        assert!(clean.ends_with('…'));
        assert_eq!(sanitize_reason("short"), "short");
    }
}
