//! Dead letters (the `dead_letters` table of migration 0007): what a consumer or the
//! relay could never process or publish as it was, parked with its reason. `dlq list`
//! and `dlq show` let operators inspect them; `dlq replay` re-drives them once the
//! cause is fixed.
//!
//! The SQL and the output live here; producing to Kafka does not (this crate must not
//! depend on `rdkafka`): [`replay`] hands each dead letter to a re-driver the binary
//! supplies (`messaging::redrive`) and marks it only after that re-driver reports the
//! broker's acknowledgement.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::Table;
use eventstore::{DeadLetterSource, FeedEvent};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::Format;

/// Dead letters read per query: listing and replaying a large table holds one page.
const PAGE: i64 = 500;

/// Characters of the reason a table shows (the JSON lines and `show` carry all of it).
const REASON_IN_TABLE: usize = 60;

/// The `dlq` subcommand of both binaries, with the binary's own settings: `S` where
/// its data is (schema and database), `K` its Kafka settings (for `replay`).
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand<S: clap::Args, K: clap::Args> {
    /// List dead letters, oldest first: a table, or JSON lines with `--json`; the count
    /// goes last (to standard error with `--json`). Only those never replayed unless
    /// `--all`.
    List {
        #[command(flatten)]
        #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
        filter: Filter,
        /// Include dead letters already replayed.
        #[arg(long)]
        all: bool,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
        store: S,
    },
    /// Print everything of one dead letter: reason, origin, key, headers and payload
    /// (as text when it is printable UTF-8, else base64).
    Show {
        /// The dead letter's id (the first column of `list`).
        id: i64,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
        store: S,
    },
    /// Re-drive dead letters after their cause was fixed: a consumed message is
    /// produced back to its topic (with header `dlq-replay-of`), an event the relay
    /// could not publish is published again. Each is marked replayed once the broker
    /// acknowledged it; only those never replayed are re-driven unless `--again`. One
    /// the broker refuses again is reported and left unmarked; an unreachable broker
    /// stops the run there. Exits with status 1 when one failed.
    Replay {
        #[command(flatten)]
        #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
        filter: Filter,
        /// Only this dead letter (repeatable); an unknown id is an error.
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<i64>,
        /// Print what would be re-driven, changing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also re-drive dead letters already replayed.
        #[arg(long)]
        again: bool,
        #[command(flatten)]
        #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
        store: S,
        #[command(flatten)]
        #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
        kafka: K,
    },
}

/// Which dead letters a command works on; every condition given must hold.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filter {
    /// Only those parked by a consumer or by the relay.
    #[arg(long, value_enum)]
    pub source: Option<DeadLetterSource>,
    /// Only those whose reason contains this text (ignoring case).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only those whose origin starts with this (`topic/partition/offset` for a
    /// consumer's, the event id for the relay's).
    #[arg(long)]
    pub origin: Option<String>,
    /// Only those of this topic (the one consumed from, or the one the relay meant).
    #[arg(long)]
    pub topic: Option<String>,
    /// Only those parked at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
}

/// One dead letter as a listing shows it (without its bytes).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    /// Its id.
    pub id: i64,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
    /// `consumer` or `relay`.
    pub source: String,
    /// The topic it was consumed from, or the one the relay meant to publish to.
    pub topic: String,
    /// `topic/partition/offset`, or the event id.
    pub origin: String,
    /// Why it was parked.
    pub reason: String,
    /// The parked event, for the relay's.
    pub event_id: Option<Uuid>,
    /// The size of the parked message's body.
    pub payload_bytes: Option<i32>,
    /// How often it was re-driven.
    pub replays: i32,
    /// When it was last re-driven.
    pub replayed_at: Option<DateTime<Utc>>,
}

/// One header as stored: its value base64-encoded, or null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredHeader {
    /// The header's name.
    pub key: String,
    /// The value in base64, `None` for a header without a value.
    pub value: Option<String>,
}

/// Everything of one dead letter.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    /// Its id.
    pub id: i64,
    /// `consumer` or `relay`.
    pub source: String,
    /// `topic/partition/offset`, or the event id.
    pub origin: String,
    /// The topic it was consumed from, or the one the relay meant to publish to.
    pub topic: String,
    /// Why it was parked.
    pub reason: String,
    /// The parked event, for the relay's.
    pub event_id: Option<Uuid>,
    /// The message's key.
    pub message_key: Option<Vec<u8>>,
    /// The message's body; `None` for the relay's (the event stays in `events`).
    pub payload: Option<Vec<u8>>,
    /// The message's headers, in order.
    pub headers: Json<Vec<StoredHeader>>,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
    /// How often it was re-driven.
    pub replays: i32,
    /// When it was last re-driven.
    pub replayed_at: Option<DateTime<Utc>>,
}

impl DeadLetter {
    /// The headers with their values decoded.
    pub fn decoded_headers(&self) -> anyhow::Result<Vec<(String, Option<Vec<u8>>)>> {
        self.headers
            .0
            .iter()
            .map(|header| {
                let value = header.value.as_deref().map(|v| BASE64.decode(v)).transpose();
                Ok((
                    header.key.clone(),
                    value.with_context(|| format!("header {} of dead letter {} is not base64", header.key, self.id))?,
                ))
            })
            .collect()
    }
}

/// Bytes as an operator can read them: text when they are printable UTF-8, else
/// base64. Control characters (a NUL, a terminal escape sequence) count as not
/// printable, since hostile input must not reach an operator's terminal as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bytes {
    /// The bytes were printable UTF-8 text.
    Utf8(String),
    /// They were not: their base64.
    Base64(String),
}

impl Bytes {
    /// `bytes` as text or base64.
    pub fn of(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) if !text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) => {
                Self::Utf8(text.to_owned())
            }
            _ => Self::Base64(BASE64.encode(bytes)),
        }
    }
}

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Utf8(text) => write!(f, "{text}"),
            Self::Base64(encoded) => write!(f, "(base64) {encoded}"),
        }
    }
}

/// One dead letter as `show --json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Shown<'a> {
    id: i64,
    source: &'a str,
    origin: &'a str,
    topic: &'a str,
    reason: &'a str,
    event_id: Option<Uuid>,
    parked_at: DateTime<Utc>,
    replays: i32,
    replayed_at: Option<DateTime<Utc>>,
    key: Option<Bytes>,
    headers: Vec<ShownHeader>,
    payload: Option<Bytes>,
}

#[derive(Debug, Serialize)]
struct ShownHeader {
    key: String,
    value: Option<Bytes>,
}

/// The columns of a listing, in SQL.
const LISTED: &str = "id, parked_at, source, topic, origin, reason, event_id, octet_length(payload) AS payload_bytes, replays, replayed_at";

/// The conditions of a selection, in SQL: `$1` the id to read after, then the
/// filter's fields, whether replayed ones count, and the ids (none: any).
const SELECTED: &str = "id > $1
   AND ($2::text IS NULL OR source = $2)
   AND ($3::text IS NULL OR strpos(lower(reason), lower($3)) > 0)
   AND ($4::text IS NULL OR starts_with(origin, $4))
   AND ($5::text IS NULL OR topic = $5)
   AND ($6::timestamptz IS NULL OR parked_at >= $6)
   AND ($7 OR replayed_at IS NULL)
   AND (cardinality($8::bigint[]) = 0 OR id = ANY($8))";

/// Which dead letters: the filter, whether those already replayed count, the ids.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The conditions.
    pub filter: Filter,
    /// Whether dead letters already replayed are included.
    pub include_replayed: bool,
    /// Only these ids, when not empty.
    pub ids: Vec<i64>,
}

impl Selection {
    fn bind<'q, O>(
        &'q self,
        query: &'q str,
        after: i64,
        include_replayed: bool,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        let filter = &self.filter;
        sqlx::query_as(query)
            .bind(after)
            .bind(filter.source.map(DeadLetterSource::as_str))
            .bind(filter.reason.as_deref())
            .bind(filter.origin.as_deref())
            .bind(filter.topic.as_deref())
            .bind(filter.since)
            .bind(include_replayed)
            .bind(&self.ids)
    }

    /// The next page of the selection after id `after`, oldest first.
    pub async fn page(&self, pool: &PgPool, after: i64) -> sqlx::Result<Vec<Listed>> {
        let query = format!("SELECT {LISTED} FROM dead_letters WHERE {SELECTED} ORDER BY id LIMIT {PAGE}");
        self.bind(&query, after, self.include_replayed).fetch_all(pool).await
    }

    /// How many dead letters the conditions match that are left out because they were
    /// replayed before (none when replayed ones are included).
    async fn left_out_as_replayed(&self, pool: &PgPool) -> sqlx::Result<i64> {
        if self.include_replayed {
            return Ok(0);
        }
        let query = format!("SELECT count(*) FROM dead_letters WHERE {SELECTED} AND replayed_at IS NOT NULL");
        let (count,): (i64,) = self.bind(&query, 0, true).fetch_one(pool).await?;
        Ok(count)
    }
}

/// Loads one dead letter; `None` when there is none with `id`.
pub async fn load(pool: &PgPool, id: i64) -> sqlx::Result<Option<DeadLetter>> {
    sqlx::query_as(
        "SELECT id, source, origin, topic, reason, event_id, message_key, payload, headers, parked_at, replays, replayed_at
           FROM dead_letters WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Marks dead letter `id` re-driven (once more, now).
pub async fn mark_replayed(pool: &PgPool, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE dead_letters SET replays = replays + 1, replayed_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Text of a table cell: control characters (input may be hostile) shown escaped.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// At most `limit` characters of `text`, with an ellipsis when cut.
fn shortened(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Writes `line` to `out`; false when the reader has gone (`oms dlq list | head`).
fn write_or_stop(out: &mut impl Write, line: impl std::fmt::Display) -> io::Result<bool> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error),
    }
}

/// Prints the dead letters `selection` matches, oldest first, a page at a time (one
/// table per page), then their count; returns the count. With JSON lines the count
/// goes to standard error, so the output stays parsable.
pub async fn list(pool: &PgPool, selection: &Selection, format: Format, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut listed = 0u64;
    loop {
        let page = selection.page(pool, after).await.context("reading dead letters")?;
        let Some(last) = page.last() else { break };
        after = last.id;
        listed += page.len() as u64;
        let written = match format {
            Format::Json => {
                let mut text = String::new();
                for letter in &page {
                    text.push_str(&serde_json::to_string(letter)?);
                    text.push('\n');
                }
                write_or_stop(out, text.trim_end())?
            }
            Format::Table => write_or_stop(out, table(&page))?,
        };
        if !written || (page.len() as i64) < PAGE {
            break;
        }
    }
    let count = format!("{listed} dead letter{}", if listed == 1 { "" } else { "s" });
    match format {
        Format::Json => eprintln!("{count}"),
        Format::Table => {
            write_or_stop(out, count)?;
        }
    }
    Ok(listed)
}

fn table(page: &[Listed]) -> Table {
    let header = ["id", "parked at", "source", "topic", "origin", "reason", "replays"];
    crate::table(
        header,
        page.iter().map(|letter| {
            [
                letter.id.to_string(),
                time(letter.parked_at),
                letter.source.clone(),
                printable(&letter.topic),
                printable(&letter.origin),
                printable(&shortened(&letter.reason, REASON_IN_TABLE)),
                letter.replays.to_string(),
            ]
        }),
    )
}

/// Prints everything of dead letter `id`; an error when there is none.
pub async fn show(pool: &PgPool, id: i64, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let letter = load(pool, id)
        .await
        .context("reading the dead letter")?
        .with_context(|| format!("there is no dead letter {id}"))?;
    print_one(&letter, format, out)
}

/// Prints `letter` as `show` does.
pub fn print_one(letter: &DeadLetter, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let headers: Vec<ShownHeader> = letter
        .decoded_headers()?
        .into_iter()
        .map(|(key, value)| ShownHeader { key, value: value.as_deref().map(Bytes::of) })
        .collect();
    let shown = Shown {
        id: letter.id,
        source: &letter.source,
        origin: &letter.origin,
        topic: &letter.topic,
        reason: &letter.reason,
        event_id: letter.event_id,
        parked_at: letter.parked_at,
        replays: letter.replays,
        replayed_at: letter.replayed_at,
        key: letter.message_key.as_deref().map(Bytes::of),
        headers,
        payload: letter.payload.as_deref().map(Bytes::of),
    };
    match format {
        Format::Json => {
            serde_json::to_writer(&mut *out, &shown)?;
            writeln!(out)?;
        }
        Format::Table => {
            let or_none = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
            writeln!(out, "dead letter {}", shown.id)?;
            writeln!(out, "source:    {}", shown.source)?;
            writeln!(out, "topic:     {}", printable(shown.topic))?;
            writeln!(out, "origin:    {}", printable(shown.origin))?;
            writeln!(out, "parked at: {}", time(shown.parked_at))?;
            writeln!(
                out,
                "replays:   {}{}",
                shown.replays,
                shown.replayed_at.map(|at| format!(" (last at {})", time(at))).unwrap_or_default()
            )?;
            writeln!(out, "event id:  {}", or_none(shown.event_id.map(|id| id.to_string())))?;
            writeln!(out, "reason:    {}", printable(shown.reason))?;
            writeln!(out, "key:       {}", or_none(shown.key.as_ref().map(Bytes::to_string)))?;
            writeln!(out, "headers:   {}", if shown.headers.is_empty() { "-" } else { "" })?;
            for header in &shown.headers {
                writeln!(
                    out,
                    "  {}: {}",
                    printable(&header.key),
                    or_none(header.value.as_ref().map(Bytes::to_string))
                )?;
            }
            match (&shown.payload, letter.payload.as_ref()) {
                (Some(payload), Some(bytes)) => writeln!(out, "payload ({} bytes):\n{payload}", bytes.len())?,
                _ => writeln!(
                    out,
                    "payload:   - (the relay's: the event {} is in the event store)",
                    or_none(shown.event_id.map(|id| id.to_string()))
                )?,
            }
        }
    }
    Ok(())
}

/// What re-driving a dead letter means, for the binary's re-driver.
#[derive(Debug)]
pub enum Parked {
    /// A consumed message: produce it back to `topic` as it was.
    Message {
        /// The topic it was consumed from.
        topic: String,
        /// Its key.
        key: Option<Vec<u8>>,
        /// Its body.
        payload: Option<Vec<u8>>,
        /// Its headers, in order.
        headers: Vec<(String, Option<Vec<u8>>)>,
    },
    /// A committed event the relay could not publish: publish its messages for `topic`.
    Event {
        /// The topic the relay meant to publish to.
        topic: String,
        /// The event, as the feed delivers it.
        event: FeedEvent,
    },
}

/// Why a dead letter was not re-driven, and whether the others can be.
#[derive(Debug)]
pub enum Failed {
    /// This one cannot be re-driven as it is (still too large for the broker, its
    /// route still refuses it): reported and left unmarked, and the others go on.
    This(anyhow::Error),
    /// None can be now (the broker went away or timed out): the replay stops, and
    /// what is left stays for the next run (instead of each waiting for a timeout).
    All(anyhow::Error),
}

impl From<anyhow::Error> for Failed {
    fn from(error: anyhow::Error) -> Self {
        Self::This(error)
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Dead letters re-driven (or, in a dry run, to be re-driven), per topic.
    pub redriven: BTreeMap<String, u64>,
    /// How many failed again (not marked).
    pub failed: u64,
    /// The first failures (id, reason), at most [`FAILURES_IN_SUMMARY`]: every
    /// failure is printed as it happens, and a run where the broker went away could
    /// fail for each of millions.
    pub failures: Vec<(i64, String)>,
    /// Why the replay stopped before the end ([`Failed::All`]), if it did.
    pub stopped: Option<String>,
    /// Dead letters left out because they were replayed before.
    pub skipped: u64,
}

impl Replayed {
    /// How many were re-driven.
    pub fn redriven_total(&self) -> u64 {
        self.redriven.values().sum()
    }

    /// Whether everything selected was re-driven (nothing failed, nothing stopped).
    pub fn complete(&self) -> bool {
        self.failed == 0 && self.stopped.is_none()
    }
}

/// Failures kept for the summary: beyond these only the count grows (each was
/// printed as it happened).
pub const FAILURES_IN_SUMMARY: usize = 20;

/// Re-drives the dead letters `selection` matches, oldest first: hands each to
/// `redrive` (which returns once the broker acknowledged it) and marks it replayed
/// only then. A failure is reported and left unmarked, and the rest go on. With
/// `dry_run`, prints what would be re-driven and changes nothing (`redrive` is not
/// called). Prints each failure as it happens and a summary at the end. A failure of
/// [`Failed::All`] stops the replay there.
///
/// Every id of `selection.ids` must exist: otherwise nothing is done.
pub async fn replay(
    pool: &PgPool,
    selection: &Selection,
    dry_run: bool,
    out: &mut impl Write,
    redrive: impl AsyncFn(i64, Parked) -> Result<(), Failed>,
) -> anyhow::Result<Replayed> {
    if !selection.ids.is_empty() {
        let known: Vec<i64> = sqlx::query_scalar("SELECT id FROM dead_letters WHERE id = ANY($1)")
            .bind(&selection.ids)
            .fetch_all(pool)
            .await
            .context("reading dead letters")?;
        let unknown: Vec<String> = selection.ids.iter().filter(|id| !known.contains(id)).map(i64::to_string).collect();
        anyhow::ensure!(unknown.is_empty(), "there is no dead letter {}; nothing was replayed", unknown.join(", "));
    }
    let mut replayed = Replayed {
        skipped: selection.left_out_as_replayed(pool).await.context("counting replayed dead letters")? as u64,
        ..Default::default()
    };
    let mut after = 0;
    'pages: loop {
        let page = selection.page(pool, after).await.context("reading dead letters")?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for listed in &page {
            if dry_run {
                writeln!(
                    out,
                    "would re-drive {} ({}, {}, origin {})",
                    listed.id,
                    listed.source,
                    printable(&listed.topic),
                    printable(&listed.origin)
                )?;
                *replayed.redriven.entry(listed.topic.clone()).or_default() += 1;
                continue;
            }
            match redrive_one(pool, listed.id, &redrive).await {
                Ok(topic) => *replayed.redriven.entry(topic).or_default() += 1,
                Err(failed) => {
                    let (error, stop) = match failed {
                        Failed::This(error) => (error, false),
                        Failed::All(error) => (error, true),
                    };
                    let reason = format!("{error:#}");
                    writeln!(out, "dead letter {} failed: {}", listed.id, printable(&reason))?;
                    replayed.failed += 1;
                    if replayed.failures.len() < FAILURES_IN_SUMMARY {
                        replayed.failures.push((listed.id, reason.clone()));
                    }
                    if stop {
                        replayed.stopped = Some(reason);
                        break 'pages;
                    }
                }
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    print_summary(&replayed, dry_run, out)?;
    Ok(replayed)
}

/// Re-drives and marks one dead letter; returns its topic.
async fn redrive_one(
    pool: &PgPool,
    id: i64,
    redrive: &impl AsyncFn(i64, Parked) -> Result<(), Failed>,
) -> Result<String, Failed> {
    // Read again, with its bytes, one at a time: pages of payloads could be large.
    let letter = load(pool, id).await.context("reading the dead letter")?.context("it was deleted meanwhile")?;
    let topic = letter.topic.clone();
    let parked = match letter.source.as_str() {
        "consumer" => Parked::Message {
            headers: letter.decoded_headers()?,
            topic: letter.topic,
            key: letter.message_key,
            payload: letter.payload,
        },
        "relay" => {
            let event_id = letter.event_id.context("the relay's dead letter names no event")?;
            let event = eventstore::load_event(pool, event_id)
                .await
                .context("reading the event")?
                .with_context(|| format!("event {event_id} is not in the event store"))?;
            Parked::Event { topic: letter.topic, event }
        }
        other => return Err(anyhow::anyhow!("unknown source '{other}'").into()),
    };
    redrive(id, parked).await?;
    // Acknowledged: a failure to mark it now means it is re-driven again next time,
    // which consumers, being idempotent, shrug off.
    mark_replayed(pool, id)
        .await
        .context("the broker acknowledged it, but marking it replayed failed")
        .map_err(Failed::All)?;
    Ok(topic)
}

fn print_summary(replayed: &Replayed, dry_run: bool, out: &mut impl Write) -> io::Result<()> {
    let per_topic: Vec<String> =
        replayed.redriven.iter().map(|(topic, count)| format!("{count} to {}", printable(topic))).collect();
    let verb = if dry_run { "would re-drive" } else { "re-driven" };
    let detail = if per_topic.is_empty() { String::new() } else { format!(" ({})", per_topic.join(", ")) };
    writeln!(out, "{verb} {}{detail}", replayed.redriven_total())?;
    if !dry_run {
        writeln!(out, "failed {}", replayed.failed)?;
        for (id, reason) in &replayed.failures {
            writeln!(out, "  dead letter {id}: {}", printable(reason))?;
        }
        let unlisted = replayed.failed - replayed.failures.len() as u64;
        if unlisted > 0 {
            writeln!(out, "  and {unlisted} more (printed above)")?;
        }
        if replayed.stopped.is_some() {
            writeln!(out, "stopped there: the rest were not tried; run replay again once the cause is gone")?;
        }
    }
    writeln!(out, "skipped {} (replayed before; --again includes them)", replayed.skipped)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_utf8_is_text_and_anything_else_base64() {
        assert_eq!(Bytes::of(b"{\"a\": 1}\n"), Bytes::Utf8("{\"a\": 1}\n".to_owned()));
        assert_eq!(Bytes::of(b"a\0b"), Bytes::Base64(BASE64.encode(b"a\0b")), "a NUL is not printable");
        assert_eq!(Bytes::of(b"\x1b[31mred"), Bytes::Base64(BASE64.encode(b"\x1b[31mred")), "nor a terminal escape");
        assert_eq!(Bytes::of(&[0xff, 0xfe]), Bytes::Base64("//4=".to_owned()), "invalid UTF-8");
        assert_eq!(serde_json::to_value(Bytes::of(&[0xff])).expect("json"), serde_json::json!({"base64": "/w=="}));
    }

    #[test]
    fn reasons_are_shortened_on_a_character_boundary_and_control_characters_escaped() {
        assert_eq!(shortened("ééé", 2), "éé…");
        assert_eq!(shortened("short", 60), "short");
        assert_eq!(printable("a\nb\u{1b}"), "a\\nb\\u{1b}");
    }

    /// A fresh OMS schema with dead letters of `topics` (one each, in order).
    async fn parked(topics: &[&str]) -> (PgPool, Vec<i64>) {
        let url = migrations::testing::create_database().await.expect("a test database");
        let pool = migrations::connect_and_migrate(&url, "oms", 2, &migrations::OMS).await.expect("migrated");
        let mut ids = Vec::new();
        for (offset, topic) in topics.iter().enumerate() {
            let id = sqlx::query_scalar(
                "INSERT INTO dead_letters (source, origin, topic, reason, payload) VALUES ('consumer', $1, $2, 'bad', '\\x00') RETURNING id",
            )
            .bind(format!("{topic}/0/{offset}"))
            .bind(topic)
            .fetch_one(&pool)
            .await
            .expect("parked");
            ids.push(id);
        }
        (pool, ids)
    }

    async fn marked(pool: &PgPool) -> Vec<i32> {
        sqlx::query_scalar("SELECT replays FROM dead_letters ORDER BY id").fetch_all(pool).await.expect("read")
    }

    #[tokio::test]
    async fn a_refused_dead_letter_is_left_unmarked_and_the_others_go_on() {
        let (pool, ids) = parked(&["a", "b", "a"]).await;
        let mut out = Vec::new();
        let replayed = replay(&pool, &Selection::default(), false, &mut out, async |id, _| {
            if id == ids[1] { Err(Failed::This(anyhow::anyhow!("still too large"))) } else { Ok(()) }
        })
        .await
        .expect("replayed");
        assert_eq!((replayed.redriven_total(), replayed.failed, replayed.stopped.is_none()), (2, 1, true));
        assert_eq!(marked(&pool).await, [1, 0, 1]);
        assert!(String::from_utf8(out).expect("utf-8").contains(&format!("dead letter {}: still too large", ids[1])));
    }

    #[tokio::test]
    async fn an_outage_stops_the_replay_where_it_happened_and_leaves_the_rest_for_the_next_run() {
        let (pool, ids) = parked(&["a", "b", "c"]).await;
        let mut out = Vec::new();
        let replayed = replay(&pool, &Selection::default(), false, &mut out, async |id, _| {
            if id == ids[1] { Err(Failed::All(anyhow::anyhow!("the broker is unavailable"))) } else { Ok(()) }
        })
        .await
        .expect("replayed");
        assert_eq!((replayed.redriven_total(), replayed.failed, replayed.complete()), (1, 1, false));
        assert_eq!(marked(&pool).await, [1, 0, 0], "the third was not tried");
        assert!(String::from_utf8(out).expect("utf-8").contains("stopped there"));
        let again =
            replay(&pool, &Selection::default(), false, &mut Vec::new(), async |_, _| Ok(())).await.expect("replayed");
        assert_eq!((again.redriven_total(), again.skipped), (2, 1), "the next run re-drives the rest only");
        assert_eq!(marked(&pool).await, [1, 1, 1]);
    }

    #[test]
    fn the_summary_names_each_topic_each_failure_and_the_skipped() {
        let replayed = Replayed {
            redriven: BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]),
            failed: 1,
            failures: vec![(7, "too large".to_owned())],
            stopped: None,
            skipped: 4,
        };
        let mut out = Vec::new();
        print_summary(&replayed, false, &mut out).expect("printed");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "re-driven 3 (2 to a, 1 to b)\nfailed 1\n  dead letter 7: too large\nskipped 4 (replayed before; --again includes them)\n"
        );
    }
}
