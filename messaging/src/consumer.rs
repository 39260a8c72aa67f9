//! The at-least-once consumer loop, a batch at a time.
//!
//! Whatever has arrived (up to [`MAX_BATCH`] messages, across partitions, in partition
//! order) is handed to the handler at once, so it can decide everything in one
//! database transaction instead of one per message. Offsets are stored (and then
//! committed in the background) only after the handler returned, so after a crash or
//! a rebalance unfinished messages are delivered again: handlers must be idempotent. A
//! technical failure retries the whole batch, never skipping a message; a message that
//! can never be handled goes to the dead-letter topic with the reason and its origin,
//! and the consumer moves on.
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
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;

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
    /// The message as received by `group`, whose age it records.
    fn received(message: &BorrowedMessage<'_>, group: &str) -> Self {
        if let Some(created) = message.timestamp().to_millis() {
            let age = chrono::Utc::now().timestamp_millis().saturating_sub(created);
            telemetry::pipeline::record_message_age(group, message.topic(), Duration::from_millis(u64::try_from(age).unwrap_or(0)));
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

    fn origin(&self) -> String {
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
/// and returns.
pub async fn run_consumer<H: MessageHandler>(
    settings: &KafkaSettings,
    group: &str,
    topics: &[&str],
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The consumed topics and their dead-letter topics must exist: brokers without
    // topic auto-creation would otherwise stall a partition for good on its first
    // poison message.
    let needed: Vec<String> = topics.iter().flat_map(|t| [(*t).to_owned(), Topics::dead_letter(t)]).collect();
    let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
    if !crate::topics::ensure_topics_patiently(settings, &needed, &shutdown).await {
        return Ok(());
    }
    let consumer: Arc<StreamConsumer> = Arc::new(settings.consumer_config(group).create().context("creating the Kafka consumer")?);
    consumer.subscribe(topics).context("subscribing")?;
    let dead_letters: FutureProducer = settings.producer_config().create().context("creating the dead-letter producer")?;
    tracing::info!(group, ?topics, "consumer started");
    let lag = (settings.lag_interval_ms > 0).then(|| {
        let interval = Duration::from_millis(settings.lag_interval_ms);
        tokio::spawn(crate::lag::report_consumer_lag(consumer.clone(), group.to_owned(), interval, shutdown.clone()))
    });
    let worker = BatchWorker { handler, dead_letters, group: group.to_owned(), shutdown: shutdown.clone() };

    loop {
        let first = tokio::select! {
            // Shutdown first: a stream of ready messages must not delay it.
            biased;
            () = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        let mut batch = match first {
            Ok(message) => vec![IncomingMessage::received(&message, group)],
            Err(error) => {
                tracing::warn!(%error, group, "consumer error");
                if sleep_or_cancel(Duration::from_millis(200), &shutdown).await {
                    break;
                }
                continue;
            }
        };
        // Take whatever else has already arrived, without waiting for more.
        while batch.len() < MAX_BATCH {
            match consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(IncomingMessage::received(&message, group)),
                Some(Err(error)) => {
                    tracing::warn!(%error, group, "consumer error");
                    break;
                }
                None => break,
            }
        }
        let started = std::time::Instant::now();
        if !worker.process(&batch).await {
            break; // shutdown while retrying: left for redelivery
        }
        tracing::debug!(group, messages = batch.len(), handle_ms = started.elapsed().as_millis() as u64, "consumer handled a batch");
        store_offsets(&consumer, &batch);
    }
    // What was processed is committed now, not at the next auto-commit: the partitions'
    // next owner (this service restarted, or another instance) resumes right after it.
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, group, "final offset commit");
    }
    let _ = worker.dead_letters.flush(Timeout::After(Duration::from_secs(5)));
    if let Some(lag) = lag {
        let _ = lag.await;
    }
    tracing::info!(group, "consumer stopped");
    Ok(())
}

/// Stores, per partition, the offset after the last message of `batch`.
fn store_offsets(consumer: &StreamConsumer, batch: &[IncomingMessage]) {
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

struct BatchWorker<H> {
    handler: Arc<H>,
    dead_letters: FutureProducer,
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
                    tracing::error!(origin = %message.origin(), %reason, "dead-lettering a message");
                    if !self.dead_letter(message, &reason).await {
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

    /// The handler's verdicts, retrying technical failures with backoff; `None` on
    /// shutdown. A batch that makes the handler panic is handled again one message at
    /// a time, and the message that panics alone is unprocessable.
    async fn verdicts(&self, batch: &[IncomingMessage]) -> Option<Vec<Verdict>> {
        let mut failures = 0u32;
        loop {
            match AssertUnwindSafe(self.handler.handle(batch)).catch_unwind().await {
                Ok(Ok(verdicts)) if verdicts.len() == batch.len() => return Some(verdicts),
                Ok(Ok(verdicts)) => {
                    tracing::error!(verdicts = verdicts.len(), messages = batch.len(), "handler answered for the wrong number of messages; retrying");
                }
                Ok(Err(error)) => {
                    tracing::warn!(error = format!("{error:#}"), failures, messages = batch.len(), origin = %batch[0].origin(), "handling failed; retrying");
                }
                Err(panic) if batch.len() > 1 => {
                    tracing::error!(reason = panic_reason(&panic), messages = batch.len(), "handler panicked; handling the batch one message at a time");
                    let mut verdicts = Vec::with_capacity(batch.len());
                    for message in batch {
                        verdicts.extend(Box::pin(self.verdicts(std::slice::from_ref(message))).await?);
                    }
                    return Some(verdicts);
                }
                Err(panic) => return Some(vec![Err(Unprocessable(format!("handler panicked: {}", panic_reason(&panic))))]),
            }
            failures += 1;
            let backoff = Duration::from_millis(50 * 2u64.pow(failures.min(7)));
            if sleep_or_cancel(backoff, &self.shutdown).await {
                return None;
            }
        }
    }

    async fn dead_letter(&self, message: &IncomingMessage, reason: &str) -> bool {
        let topic = Topics::dead_letter(&message.topic);
        let origin = message.origin();
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
            match self.dead_letters.send(record, Timeout::After(Duration::from_secs(30))).await {
                Ok(_) => return true,
                Err((error, _)) => {
                    tracing::warn!(%error, %topic, "dead-letter publish failed; retrying");
                    if sleep_or_cancel(Duration::from_secs(1), &self.shutdown).await {
                        return false;
                    }
                }
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

/// Runs [`run_consumer`] in a task; a failure to start is logged there, once.
pub fn spawn_consumer<H: MessageHandler>(
    settings: KafkaSettings,
    group: String,
    topic: String,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = run_consumer(&settings, &group, &[&topic], handler, shutdown).await {
            tracing::error!(error = format!("{error:#}"), group, "consumer failed");
        }
    })
}
