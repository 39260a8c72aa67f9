//! The commit-ordered feed of all events in a schema, with persisted reader positions.
//!
//! Rows are read in `(transaction_id, global_position)` order, and only from
//! transactions older than every transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`). A transaction still in flight can
//! therefore never commit a row *behind* a position already read: the feed has no
//! gaps, whatever the commit order of concurrent writers. Within one aggregate the
//! order is its sequence order, since each command writes one aggregate in one
//! transaction after the previous one committed.
//!
//! # Layout
//! - this file: what the feed delivers ([`FeedEvent`] at a [`FeedPosition`]) and the
//!   named reader ([`Feed`]) with its settings;
//! - `pages`: reading a page of committed events, the lag and the age of what is
//!   unread;
//! - `checkpoints`: a reader's saved position;
//! - `leadership`: the advisory lock that lets one follower per feed run, on a
//!   connection watched for death;
//! - `following`: the follower's loop, pipelined batches handed to a callback, and
//!   its lag reports.

mod checkpoints;
mod following;
mod leadership;
mod pages;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::PgPool;
use telemetry::FeedReader;
use uuid::Uuid;

pub use following::sleep_or_cancel;
pub use pages::FeedPage;
pub(crate) use pages::{EVENT_COLUMNS, EventRow};

use crate::CommitNotifier;

/// A place in the feed; readers resume after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition {
    /// The writing transaction.
    pub transaction_id: u64,
    /// The row's global position.
    pub global_position: i64,
}

/// One event as the feed delivers it: the stored columns, untouched.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Where it is in the feed.
    pub position: FeedPosition,
    /// Its unique id.
    pub event_id: Uuid,
    /// `Order`, `Product`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// Its place in the aggregate's stream.
    pub sequence: i64,
    /// The event's name.
    pub event_type: String,
    /// The payload's schema version.
    pub event_version: String,
    /// The payload as stored (tagged with the event name), as JSON text: decoded
    /// only by whoever needs it, into whatever type it needs.
    pub payload: Box<RawValue>,
    /// The metadata as stored.
    pub metadata: HashMap<String, String>,
    /// When the writing transaction began.
    pub recorded_at: DateTime<Utc>,
}

impl FeedEvent {
    /// A metadata field, when present.
    pub fn metadata_field(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Decodes it as an event of `A` (see [`crate::Events::decode_stored`]).
    pub fn decode<A: cqrs_es::Aggregate>(
        self,
        events: &crate::Events<A>,
    ) -> Result<cqrs_es::EventEnvelope<A>, crate::EventsError> {
        events.decode_stored(
            self.aggregate_id,
            self.sequence,
            self.event_type,
            self.event_version,
            &self.payload,
            self.metadata,
        )
    }

    /// The trace headers the command that wrote it kept (see
    /// [`crate::EventMetadata::trace_headers`]); empty when it kept none.
    pub fn trace_headers(&self) -> Vec<(String, String)> {
        crate::metadata::trace_headers_in(|key| self.metadata_field(key))
    }

    /// The payload without the enum tag postgres-es stores around it.
    pub fn fields(&self) -> Value {
        // The column is jsonb, so the text always parses.
        match serde_json::from_str(self.payload.get()).unwrap_or(Value::Null) {
            Value::Object(mut tagged) if tagged.len() == 1 => tagged.remove(&self.event_type).unwrap_or(Value::Null),
            Value::String(_) => Value::Object(Default::default()),
            other => other,
        }
    }
}

/// A named reader of the feed with its persisted position.
#[derive(Debug, Clone)]
pub struct Feed {
    pool: PgPool,
    name: String,
    lag_reported_as: Option<FeedReader>,
    woken_by: Option<CommitNotifier>,
    /// Set by [`Feed::polling_every`]; else [`POLL`], or [`POLL_WHEN_WOKEN`].
    poll: Option<Duration>,
    linger: Duration,
}

/// How often a reader that nothing wakes looks for new events.
const POLL: Duration = Duration::from_millis(100);

/// How often a reader that commits wake, in this process and through PostgreSQL from
/// others, looks for new events anyway: only for a wake-up lost (a `LISTEN` session
/// reconnected, a writer that does not ring), so ten times less often. Idle, the
/// services' polls were most of their database's transactions.
const POLL_WHEN_WOKEN: Duration = Duration::from_secs(1);

impl Feed {
    /// The reader `name` of the feed in `pool`'s schema.
    pub fn new(pool: PgPool, name: impl Into<String>) -> Self {
        Self { pool, name: name.into(), lag_reported_as: None, woken_by: None, poll: None, linger: Duration::ZERO }
    }

    /// While [`Feed::follow`] runs, reads as soon as `notifier` rings (a commit in this
    /// process or, through PostgreSQL, in another), besides polling (every second
    /// unless set, or every 100 ms while it cannot `LISTEN`), and re-reads
    /// within milliseconds when committed events are held back by an older open
    /// transaction.
    pub fn woken_by(mut self, notifier: CommitNotifier) -> Self {
        self.woken_by = Some(notifier);
        self
    }

    /// While [`Feed::follow`] runs, a commit that wakes it is read no sooner than
    /// `linger` after its previous read, so that a stream of commits is read (and
    /// handled) in batches rather than one by one: fewer, larger batches for at most
    /// `linger` of latency. After a quiet spell it reads at once. None unless set.
    pub fn lingering(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// While [`Feed::follow`] runs, looks for new events this often when nothing wakes
    /// it earlier (unless set: 100 ms, or 1 s when [`Feed::woken_by`] a notifier).
    pub fn polling_every(mut self, poll: Duration) -> Self {
        self.poll = Some(poll);
        self
    }

    /// While [`Feed::follow`] runs, reports how many committed events lie after this
    /// reader's position on the lag gauge of `reader`, labelled with the feed's name.
    pub fn reporting_lag_as(mut self, reader: FeedReader) -> Self {
        self.lag_reported_as = Some(reader);
        self
    }

    /// The reader's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
