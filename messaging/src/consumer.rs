//! The at-least-once consumer loop. Messages of one partition are handled one after
//! the other, partitions in parallel. A message's offset is stored (and then committed
//! in the background) only after its handler returned: after a crash or a rebalance,
//! unfinished messages are delivered again, so handlers must be idempotent. A
//! technical failure is retried, blocking its partition, never skipped; a message
//! that can never be handled goes to the dead-letter topic with the reason and its
//! origin, and the partition moves on.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use eventstore::sleep_or_cancel;
use crate::{KafkaSettings, Topics};

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
}

/// What a handler did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its effect is durable (or was already).
    Applied,
    /// It is of no interest to this consumer.
    Ignored,
}

/// Why a handler did not finish a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The message can never be handled (malformed, unknown type or version): it goes
    /// to the dead-letter topic.
    #[error("unprocessable message: {0}")]
    Poison(String),
    /// Something we depend on failed; retrying may succeed.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

/// Handles messages of one consumer group. Must be idempotent: a message may come
/// again after a crash or rebalance.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one message; returns only when its effect is durable.
    fn handle(&self, message: &IncomingMessage) -> impl Future<Output = Result<Handled, HandlerError>> + Send;
}

/// Consumes `topics` as `group` until `shutdown` (creating missing topics first, as soon
/// as the broker answers), then finishes what is in hand, commits the stored offsets
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

    let mut partitions: HashMap<(String, i32), mpsc::Sender<IncomingMessage>> = HashMap::new();
    let mut workers = JoinSet::new();
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        let message = match received {
            Ok(message) => IncomingMessage {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: message.payload().map(<[u8]>::to_vec),
            },
            Err(error) => {
                tracing::warn!(%error, group, "consumer error");
                if sleep_or_cancel(Duration::from_millis(200), &shutdown).await {
                    break;
                }
                continue;
            }
        };
        let slot = (message.topic.clone(), message.partition);
        let sender = partitions.entry(slot).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(256);
            let worker = PartitionWorker {
                consumer: consumer.clone(),
                handler: handler.clone(),
                dead_letters: dead_letters.clone(),
                shutdown: shutdown.clone(),
            };
            workers.spawn(worker.run(receiver));
            sender
        });
        if sender.send(message).await.is_err() {
            break;
        }
    }
    partitions.clear();
    while workers.join_next().await.is_some() {}
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, group, "final offset commit");
    }
    let _ = dead_letters.flush(Timeout::After(Duration::from_secs(5)));
    tracing::info!(group, "consumer stopped");
    Ok(())
}

struct PartitionWorker<H> {
    consumer: Arc<StreamConsumer>,
    handler: Arc<H>,
    dead_letters: FutureProducer,
    shutdown: CancellationToken,
}

impl<H: MessageHandler> PartitionWorker<H> {
    async fn run(self, mut messages: mpsc::Receiver<IncomingMessage>) {
        while let Some(message) = messages.recv().await {
            if !self.process(&message).await {
                return; // shutdown while retrying: left for redelivery
            }
            if let Err(error) = self.consumer.store_offset(&message.topic, message.partition, message.offset) {
                // The partition was revoked; its new owner will see the message again.
                tracing::debug!(%error, topic = %message.topic, partition = message.partition, "offset not stored");
            }
        }
    }

    /// Handles one message until done; false when shutdown interrupted the retries.
    async fn process(&self, message: &IncomingMessage) -> bool {
        let mut failures = 0u32;
        loop {
            // A panicking handler would take its partition (and the consumer) down
            // silently; a message that makes us panic is treated as unprocessable.
            let outcome = AssertUnwindSafe(self.handler.handle(message)).catch_unwind().await.unwrap_or_else(|panic| {
                let reason = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()));
                Err(HandlerError::Poison(format!("handler panicked: {}", reason.unwrap_or_default())))
            });
            match outcome {
                Ok(_) => return true,
                Err(HandlerError::Poison(reason)) => {
                    tracing::error!(topic = %message.topic, partition = message.partition, offset = message.offset, %reason, "dead-lettering a message");
                    return self.dead_letter(message, &reason).await;
                }
                Err(HandlerError::Transient(error)) => {
                    failures += 1;
                    tracing::warn!(error = format!("{error:#}"), failures, topic = %message.topic, offset = message.offset, "handling failed; retrying");
                    let backoff = Duration::from_millis(50 * 2u64.pow(failures.min(7)));
                    if sleep_or_cancel(backoff, &self.shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    async fn dead_letter(&self, message: &IncomingMessage, reason: &str) -> bool {
        let topic = Topics::dead_letter(&message.topic);
        let origin = format!("{}/{}/{}", message.topic, message.partition, message.offset);
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
