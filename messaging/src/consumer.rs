//! The at-least-once consumer loop, a batch at a time.
//!
//! Whatever has arrived (up to [`MAX_BATCH`] messages, across partitions, in partition
//! order) is handed to the handler at once, so it can decide everything in one
//! database transaction instead of one per message. Offsets are stored (and then
//! committed in the background) only after the handler returned, so after a crash or
//! a rebalance unfinished messages are delivered again: handlers must be idempotent. A
//! transient failure (connection lost, timeout) retries the whole batch with backoff,
//! never skipping a message. A batch that fails permanently (the database refuses the
//! data itself, see [`crate::failure`]) is handled again in halves down to the message
//! responsible; that message, like one the handler calls unprocessable, is parked in
//! the `dead_letters` table with its reason and origin, copied to the dead-letter topic,
//! and the consumer moves on. A consumer or dead-letter producer whose client failed
//! for good is replaced.
//!
//! Each message keeps its headers, so a handler can do its work in the trace the
//! producer started ([`IncomingMessage::span`]). Messages are counted by what became
//! of them, dead letters apart, and the lag per assigned partition is measured beside
//! the loop (see [`crate::lag`]).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::client_logs::ClientLogs;
use crate::dead_letters::sanitize_reason;
use crate::failure::{self, Failure, KafkaFailure};
use crate::producer::ReplaceableProducer;
use crate::starvation::{StuckReport, replace_when_starved};
use crate::{KafkaSettings, Topics};
use eventstore::sleep_or_cancel;
use telemetry::ConsumeResult;

/// Most messages handed to a handler at once.
pub const MAX_BATCH: usize = 500;

/// A received message, detached from the consumer.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, as text.
    pub key: Option<String>,
    /// Its body.
    pub payload: Option<Vec<u8>>,
    /// Its headers (ids, trace context), if it has any.
    pub headers: Option<OwnedHeaders>,
}

impl IncomingMessage {
    /// `envelope` as a consumer of `topic` receives it at `offset` when a relay
    /// published it: keyed by its aggregate id, with its headers. For driving a
    /// handler without a broker.
    pub fn carrying(topic: impl Into<String>, offset: i64, envelope: &crate::Envelope) -> Self {
        Self {
            topic: topic.into(),
            partition: 0,
            offset,
            key: Some(envelope.aggregate_id.clone()),
            payload: Some(serde_json::to_vec(envelope).expect("an envelope is always JSON")),
            headers: Some(envelope.headers()),
        }
    }

    /// The message as received by `group`, whose age it records.
    fn received(message: &BorrowedMessage<'_>, group: &str) -> Self {
        if let Some(created) = message.timestamp().to_millis() {
            let age = chrono::Utc::now().timestamp_millis().saturating_sub(created);
            telemetry::pipeline::record_message_age(
                group,
                message.topic(),
                Duration::from_millis(u64::try_from(age).unwrap_or(0)),
            );
        }
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().map(|h| h.detach()),
        }
    }

    /// The value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = self.headers.as_ref()?;
        headers.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// A span for handling this message, in the trace its headers carry (when they
    /// carry one): what a handler does inside it, such as building the metadata of the
    /// commands the message asks for, joins the producer's trace.
    pub fn span(&self) -> tracing::Span {
        let span = tracing::info_span!(
            "message",
            topic = %self.topic,
            partition = self.partition,
            offset = self.offset,
            otel.name = format!("{} process", self.topic),
            otel.kind = "consumer",
        );
        crate::envelope::follow_trace(&span, self.headers.as_ref());
        span
    }

    /// Where it came from: `topic/partition/offset`.
    pub fn origin(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// What a handler did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its effect is durable (or was already).
    Applied,
    /// It is of no interest to this consumer.
    Ignored,
}

/// A message that can never be handled (malformed, unknown type or version, refused
/// for good), and why: it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unprocessable message: {0}")]
pub struct Unprocessable(pub String);

/// The handler's answer for one message.
pub type Verdict = Result<Handled, Unprocessable>;

/// Handles the messages of one consumer group. Must be idempotent: a message may come
/// again after a crash or rebalance.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles `messages` (each partition's in offset order) and returns one verdict
    /// per message, in the same order, only once every effect is durable. An error
    /// means something we depend on failed: the whole batch is tried again.
    fn handle(&self, messages: &[IncomingMessage]) -> impl Future<Output = anyhow::Result<Vec<Verdict>>> + Send;
}

/// Consumes `topics` as `group` until `shutdown` (creating missing topics first, as soon
/// as the broker answers), then finishes the batch in hand, commits the stored offsets
/// and returns. Messages that can never be handled are parked as `parking` says: in
/// the `dead_letters` table and copied to their topic's dead-letter topic. While the group
/// leaves it without partitions it should have, the consumer says so through `stuck`,
/// and its client is replaced after a while (see [`crate::starvation`]).
pub async fn run_consumer<H: MessageHandler>(
    settings: &KafkaSettings,
    parking: Parking,
    group: &str,
    topics: &[&str],
    handler: Arc<H>,
    stuck: StuckReport,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The consumed topics and their dead-letter topics must exist: brokers without
    // topic auto-creation would otherwise stall a partition for good on its first
    // poison message.
    let needed: Vec<String> = topics.iter().flat_map(|t| [(*t).to_owned(), Topics::dead_letter(t)]).collect();
    let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
    if !crate::topics::ensure_topics_patiently(settings, &needed, &stuck, &shutdown).await {
        return Ok(());
    }
    let dead_letters = DeadLetters {
        pool: parking.pool,
        producer: parking.producer,
        settings: settings.clone(),
        shutdown: shutdown.clone(),
    };
    let worker = BatchWorker { handler, dead_letters, group: group.to_owned(), shutdown: shutdown.clone() };
    let watched_topics: Arc<[String]> = topics.iter().map(|t| (*t).to_owned()).collect();
    // A consumer whose client failed for good is replaced by a new one, subscribed
    // alike; what it had stored but not committed comes again.
    while !shutdown.is_cancelled() {
        let consumer: Arc<StreamConsumer<ClientLogs>> = Arc::new(
            settings.consumer_config(group).create_with_context(ClientLogs).context("creating the Kafka consumer")?,
        );
        consumer.subscribe(topics).context("subscribing")?;
        tracing::info!(group, ?topics, "consumer started");
        let lag_stops = shutdown.child_token();
        let lag = (settings.lag_interval_ms > 0).then(|| {
            let interval = Duration::from_millis(settings.lag_interval_ms);
            tokio::spawn(crate::lag::report_consumer_lag(
                consumer.clone(),
                group.to_owned(),
                interval,
                lag_stops.clone(),
            ))
        });
        // Cancelled by the watchdog when the group leaves this client without work.
        let replace = lag_stops.child_token();
        let watchdog = tokio::spawn(replace_when_starved(
            consumer.clone(),
            settings.clone(),
            group.to_owned(),
            watched_topics.clone(),
            stuck.clone(),
            replace.clone(),
        ));
        consume(&consumer, &worker, &replace).await;
        // What was processed is committed now, not at the next auto-commit: the
        // partitions' next owner (this service restarted, or another instance)
        // resumes right after it.
        if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(%error, group, "final offset commit");
        }
        lag_stops.cancel();
        if let Some(lag) = lag {
            let _ = lag.await;
        }
        let _ = watchdog.await;
        // Destroying a client blocks while it leaves the group.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    }
    worker.dead_letters.producer.flush(Duration::from_secs(5)).await;
    tracing::info!(group, "consumer stopped");
    Ok(())
}

/// Consumes with `consumer` until shutdown, until its client failed for good, or until
/// `replace` is cancelled.
async fn consume<H: MessageHandler>(
    consumer: &StreamConsumer<ClientLogs>,
    worker: &BatchWorker<H>,
    replace: &CancellationToken,
) {
    let (group, shutdown) = (worker.group.as_str(), &worker.shutdown);
    let mut errors = ErrorLog::default();
    loop {
        let first = tokio::select! {
            // Shutdown first: a stream of ready messages must not delay it.
            biased;
            () = shutdown.cancelled() => return,
            () = replace.cancelled() => return,
            received = consumer.recv() => received,
        };
        let mut batch = match first {
            Ok(message) => vec![IncomingMessage::received(&message, group)],
            Err(error) => {
                if is_fatal(consumer, &error) {
                    tracing::warn!(%error, fatal = ?consumer.client().fatal_error(), group, "the Kafka consumer failed for good; replacing it");
                    return;
                }
                // The broker away: librdkafka reconnects by itself and says so often.
                errors.failed(&error, group);
                if sleep_or_cancel(errors.pause(), shutdown).await {
                    return;
                }
                continue;
            }
        };
        errors.recovered(group);
        // Take whatever else has already arrived, without waiting for more.
        while batch.len() < MAX_BATCH {
            match consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(IncomingMessage::received(&message, group)),
                Some(Err(error)) => {
                    tracing::debug!(%error, group, "consumer error");
                    break;
                }
                None => break,
            }
        }
        let started = std::time::Instant::now();
        if !worker.process(&batch).await {
            return; // shutdown while retrying: left for redelivery
        }
        tracing::debug!(
            group,
            messages = batch.len(),
            handle_ms = started.elapsed().as_millis() as u64,
            "consumer handled a batch"
        );
        store_offsets(consumer, &batch);
    }
}

/// Whether `consumer` has failed for good (only a new client can go on).
fn is_fatal(consumer: &StreamConsumer<ClientLogs>, error: &KafkaError) -> bool {
    matches!(error, KafkaError::MessageConsumptionFatal(_)) || consumer.client().fatal_error().is_some()
}

/// Consumer errors in a row, logged once when they start, then every minute, and once
/// when they end, so that an absent broker does not flood the log.
#[derive(Default)]
struct ErrorLog {
    in_a_row: u32,
    last_logged: Option<std::time::Instant>,
}

impl ErrorLog {
    fn failed(&mut self, error: &KafkaError, group: &str) {
        self.in_a_row += 1;
        if self.last_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!(%error, group, errors = self.in_a_row, "consumer error; retrying");
            self.last_logged = Some(std::time::Instant::now());
        }
    }

    /// How long to wait before receiving again.
    fn pause(&self) -> Duration {
        Duration::from_millis(200 * u64::from(self.in_a_row.min(10)))
    }

    fn recovered(&mut self, group: &str) {
        if self.in_a_row > 0 {
            tracing::info!(group, errors = self.in_a_row, "consumer receiving again");
        }
        *self = Self::default();
    }
}

/// Stores, per partition, the offset after the last message of `batch`.
fn store_offsets(consumer: &StreamConsumer<ClientLogs>, batch: &[IncomingMessage]) {
    let mut last: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let offset = last.entry((message.topic.as_str(), message.partition)).or_insert(message.offset);
        *offset = (*offset).max(message.offset);
    }
    for ((topic, partition), offset) in last {
        if let Err(error) = consumer.store_offset(topic, partition, offset) {
            // The partition was revoked; its new owner will see the messages again.
            tracing::debug!(%error, topic, partition, "offset not stored");
        }
    }
}

/// The longest wait between two attempts at a batch that failed transiently.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often a single message must fail permanently in a row before it is
/// unprocessable: once more than needed, so that a failure that only looked permanent
/// (two writers racing for one unique key) gets a second chance.
const PERMANENT_ATTEMPTS: u32 = 2;

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(50 * 2u64.pow(failures.min(7))).min(MAX_BACKOFF)
}

struct BatchWorker<H> {
    handler: Arc<H>,
    dead_letters: DeadLetters,
    group: String,
    shutdown: CancellationToken,
}

impl<H: MessageHandler> BatchWorker<H> {
    /// Handles `batch` until done (dead-lettering what can never be handled) and counts
    /// its messages by result; false when shutdown interrupted the retries (nothing
    /// counted: the batch will come again).
    async fn process(&self, batch: &[IncomingMessage]) -> bool {
        let Some(verdicts) = self.verdicts(batch).await else { return false };
        let mut results: HashMap<(&str, ConsumeResult), u64> = HashMap::new();
        for (message, verdict) in batch.iter().zip(verdicts) {
            let result = match verdict {
                Ok(Handled::Applied) => ConsumeResult::Applied,
                Ok(Handled::Ignored) => ConsumeResult::Ignored,
                Err(Unprocessable(reason)) => {
                    let reason = sanitize_reason(&reason);
                    tracing::error!(origin = %message.origin(), %reason, group = %self.group, "dead-lettering a message");
                    if !self.dead_letters.park(message, &reason).await {
                        return false;
                    }
                    telemetry::pipeline::record_dead_letter(&self.group, &message.topic);
                    ConsumeResult::DeadLettered
                }
            };
            *results.entry((message.topic.as_str(), result)).or_default() += 1;
        }
        for ((topic, result), messages) in results {
            telemetry::pipeline::record_consumed(&self.group, topic, result, messages);
        }
        true
    }

    /// The handler's verdicts; `None` on shutdown. Transient failures are retried
    /// with backoff (capped at [`MAX_BACKOFF`]) for as long as they last. A batch that
    /// fails permanently, or makes the handler panic, is handled again in halves, down
    /// to the message responsible, which alone is unprocessable: the others are
    /// applied.
    async fn verdicts(&self, batch: &[IncomingMessage]) -> Option<Vec<Verdict>> {
        let mut failures = 0u32;
        let mut permanent = 0u32;
        loop {
            match AssertUnwindSafe(self.handler.handle(batch)).catch_unwind().await {
                Ok(Ok(verdicts)) if verdicts.len() == batch.len() => return Some(verdicts),
                Ok(Ok(verdicts)) => {
                    tracing::error!(
                        verdicts = verdicts.len(),
                        messages = batch.len(),
                        "handler answered for the wrong number of messages; retrying"
                    );
                }
                Ok(Err(error)) => match failure::classify(&error) {
                    Failure::Transient => {
                        tracing::warn!(error = format!("{error:#}"), failures, messages = batch.len(), origin = %batch[0].origin(), "handling failed; retrying");
                    }
                    Failure::Permanent if batch.len() > 1 => {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            sqlstate = failure::sqlstate(&error),
                            messages = batch.len(),
                            "a message of the batch can never be stored; handling the batch in halves"
                        );
                        return self.halves(batch).await;
                    }
                    Failure::Permanent => {
                        permanent += 1;
                        if permanent >= PERMANENT_ATTEMPTS {
                            let reason = match failure::sqlstate(&error) {
                                Some(code) => format!("{error:#} (SQLSTATE {code})"),
                                None => format!("{error:#}"),
                            };
                            return Some(vec![Err(Unprocessable(reason))]);
                        }
                        tracing::warn!(error = format!("{error:#}"), sqlstate = failure::sqlstate(&error), origin = %batch[0].origin(), "handling failed for good, it seems; trying once more");
                    }
                },
                Err(panic) if batch.len() > 1 => {
                    tracing::error!(
                        reason = panic_reason(&panic),
                        messages = batch.len(),
                        "handler panicked; handling the batch in halves"
                    );
                    return self.halves(batch).await;
                }
                Err(panic) => {
                    return Some(vec![Err(Unprocessable(format!("handler panicked: {}", panic_reason(&panic))))]);
                }
            }
            failures += 1;
            if sleep_or_cancel(backoff(failures), &self.shutdown).await {
                return None;
            }
        }
    }

    /// The verdicts of `batch`'s first half, then of its second: each partition's
    /// messages stay in order.
    async fn halves(&self, batch: &[IncomingMessage]) -> Option<Vec<Verdict>> {
        let (first, second) = batch.split_at(batch.len() / 2);
        let mut verdicts = Box::pin(self.verdicts(first)).await?;
        verdicts.extend(Box::pin(self.verdicts(second)).await?);
        Some(verdicts)
    }
}

/// Where unprocessable messages go: the `dead_letters` table first (the record
/// operators work from), then a copy on the message topic's dead-letter topic.
struct DeadLetters {
    pool: PgPool,
    producer: Arc<ReplaceableProducer>,
    settings: KafkaSettings,
    shutdown: CancellationToken,
}

/// Where a consumer parks what it can never handle: the `dead_letters` table of
/// `pool`'s schema, and a copy on the message topic's dead-letter topic through
/// `producer` (the service's, shared with its relay).
#[derive(Clone)]
pub struct Parking {
    /// The consuming service's schema.
    pub pool: PgPool,
    /// The producer that copies parked messages to their dead-letter topics.
    pub producer: Arc<ReplaceableProducer>,
}

impl DeadLetters {
    /// Parks `message` with `reason` (sanitized); false when shutdown interrupted it
    /// (the message will come again, and parking it again changes nothing).
    async fn park(&self, message: &IncomingMessage, reason: &str) -> bool {
        let origin = message.origin();
        let mut failures = 0u32;
        loop {
            match crate::dead_letters::park_message(&self.pool, message, reason).await {
                Ok(()) => break,
                Err(error) if failure::classify_sqlx(&error) == Failure::Permanent => {
                    // Cannot happen with a sanitized reason; the copy on the topic is
                    // then the only record, and the flow must go on.
                    tracing::error!(%error, %origin, "the dead letter cannot be stored; only its copy on the dead-letter topic remains");
                    break;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, %origin, "cannot store the dead letter yet; retrying");
                    if sleep_or_cancel(backoff(failures), &self.shutdown).await {
                        return false;
                    }
                }
            }
        }
        self.copy_to_topic(message, reason, &origin).await
    }

    async fn copy_to_topic(&self, message: &IncomingMessage, reason: &str, origin: &str) -> bool {
        let topic = Topics::dead_letter(&message.topic);
        let mut failures = 0u32;
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header { key: "dlq-reason", value: Some(reason.as_bytes()) })
                .insert(Header { key: "dlq-origin", value: Some(origin.as_bytes()) });
            let mut record = FutureRecord::<str, [u8]>::to(&topic).headers(headers);
            if let Some(key) = &message.key {
                record = record.key(key.as_str());
            }
            if let Some(payload) = &message.payload {
                record = record.payload(payload.as_slice());
            }
            let used = self.producer.current();
            let error = match used.producer.send(record, Timeout::After(Duration::from_secs(30))).await {
                Ok(_) => return true,
                Err((error, _)) => error,
            };
            if failure::classify_kafka(&error) == KafkaFailure::Permanent {
                tracing::error!(%error, %topic, %origin, "the broker refuses the dead letter's copy; it stays parked in the database only");
                return true;
            }
            self.producer.recover_from(&used, &error, &self.settings, &[&topic]).await;
            failures += 1;
            if failures == 1 || failures.is_multiple_of(10) {
                tracing::warn!(%error, failures, %topic, "dead-letter publish failed; retrying");
            }
            if sleep_or_cancel(backoff(failures + 3), &self.shutdown).await {
                return false;
            }
        }
    }
}

fn panic_reason(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}
