//! Every event of a schema, in commit order, as JSON lines: the audit archive.

use std::io::Write;

use chrono::{DateTime, Utc};
use eventstore::{Feed, FeedEvent, FeedPosition, StoredEvent};
use serde::Serialize;
use sqlx::PgPool;

/// Events read per query.
const PAGE: i64 = 1_000;

/// One line of an export: the aggregate, then the event as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedEvent {
    /// `Order`, `Product`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The event with its metadata.
    #[serde(flatten)]
    pub event: StoredEvent,
}

impl From<&FeedEvent> for ExportedEvent {
    fn from(event: &FeedEvent) -> Self {
        Self {
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            event: StoredEvent::from(event),
        }
    }
}

/// Writes every committed event recorded at or after `since` (all when `None`) to
/// `out`, one JSON object per line, in commit order; returns how many. Streams: at most
/// one page of events is in memory.
pub async fn export(pool: &PgPool, since: Option<DateTime<Utc>>, out: &mut impl Write) -> anyhow::Result<u64> {
    let feed = Feed::new(pool.clone(), "export");
    let mut position = FeedPosition::default();
    let mut written = 0u64;
    loop {
        let page = feed.read_after(position, PAGE).await?;
        let Some(last) = page.last().map(|e| e.position) else { break };
        for event in page.iter().filter(|e| since.is_none_or(|since| e.recorded_at >= since)) {
            let mut line = serde_json::to_vec(&ExportedEvent::from(event))?;
            line.push(b'\n');
            match out.write_all(&line) {
                Ok(()) => written += 1,
                // The reader has seen enough (`oms export | head`): not an error.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(written),
                Err(error) => return Err(error.into()),
            }
        }
        position = last;
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    match out.flush() {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(written),
    }
}
