//! The outbox relay: publishes committed events, read from the commit-ordered feed, to
//! Kafka; advances its checkpoint only after every message of a batch was acknowledged
//! by the broker or parked. A crash anywhere means some messages are published again
//! (at least once, in per-aggregate order), never that one is skipped.
//!
//! Failures are told apart per message (see [`crate::failure`]). A message the broker
//! refuses for good (too large, invalid, against a policy), or an event its route
//! cannot decode, is parked in the `dead_letters` table with its reason, logged and
//! counted, and the events behind it go on. Anything else retries the batch from the
//! checkpoint, with backoff, and parks nothing: a producer that failed for good is
//! replaced first, and topics a broker forgot are created again.
//!
//! Each message carries, besides the envelope's id headers, the W3C trace context its
//! event kept when its command ran, so its consumers continue the request's trace,
//! not the relay's. The relay's lag (committed events not yet published) and what it
//! published or parked per topic are metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use eventstore::{CommitNotifier, Feed, FeedEvent, FeedPosition};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::producer::future_producer::DeliveryFuture;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::envelope::with_trace_headers;
use crate::failure::{KafkaFailure, classify_kafka, classify_sqlx};
use crate::producer::{Current, ReplaceableProducer};
use crate::starvation::{StuckReport, unwatched};
use crate::topics::ensure_topics_patiently;
use crate::{KafkaSettings, OutgoingMessage};

/// Which messages a stored event becomes (none, one, or several).
pub trait Route: Send + Sync + 'static {
    /// Every topic this route may publish to (created at start when missing).
    fn topics(&self) -> Vec<String>;

    /// The messages for `event`; an event of no interest outside maps to none. An
    /// event the route cannot turn into messages (it does not decode) is
    /// [`Unroutable`]: the relay parks it, never skips it.
    fn route(&self, event: &FeedEvent) -> Result<Vec<OutgoingMessage>, Unroutable>;
}

/// A stored event a route cannot turn into messages, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event cannot be published to {topic}: {reason}")]
pub struct Unroutable {
    /// The topic it was meant for (where it is parked).
    pub topic: String,
    /// Why.
    pub reason: String,
}

/// Publishes one schema's events to Kafka.
pub struct Relay<R> {
    feed: Feed,
    pool: PgPool,
    kafka: KafkaSettings,
    producer: Arc<ReplaceableProducer>,
    route: R,
    /// Where queueing last failed: batches after it are refused until the feed starts
    /// again at or before it, so that no message overtakes the one that failed.
    queue_failed_at: Mutex<Option<FeedPosition>>,
    /// Where it says that it waits for topics it may not create.
    stuck: StuckReport,
}

/// One message of a batch, or the reason it has none.
enum Outgoing {
    /// Queued with the producer; the delivery report will tell.
    Queued { event_id: Uuid, topic: String, key: String, delivery: DeliveryFuture },
    /// Refused for good before it was queued (too large, say), or not routable.
    Refused { event_id: Uuid, topic: String, key: Option<String>, reason: String },
}

impl<R: Route> Relay<R> {
    /// Events per batch: one checkpoint write per batch.
    const BATCH_SIZE: i64 = 500;

    /// Batches published at once: the relay reads and queues the next batch while the
    /// broker acknowledges earlier ones (the idempotent producer keeps their order).
    const BATCHES_IN_FLIGHT: usize = 4;

    /// A relay reading the feed of `pool`'s schema under the checkpoint `name` and
    /// publishing through `producer`; what it cannot publish is parked in `pool`'s
    /// `dead_letters` table.
    pub fn new(pool: PgPool, name: &str, producer: Arc<ReplaceableProducer>, kafka: &KafkaSettings, route: R) -> Self {
        let linger = Duration::from_millis(kafka.relay_linger_ms);
        let feed = Feed::new(pool.clone(), name).reporting_lag_as(telemetry::FeedReader::Relay).lingering(linger);
        Self {
            feed,
            pool,
            kafka: kafka.clone(),
            producer,
            route,
            queue_failed_at: Mutex::new(None),
            stuck: unwatched(),
        }
    }

    /// Says through `stuck` (readiness) while its topics are missing and it may not
    /// create them.
    pub fn reporting_stuck_to(mut self, stuck: StuckReport) -> Self {
        self.stuck = stuck;
        self
    }

    /// Publishes as soon as `notifier` rings, instead of at the next poll.
    pub fn woken_by(mut self, notifier: CommitNotifier) -> Self {
        self.feed = self.feed.woken_by(notifier);
        self
    }

    /// Creates the route's topics (waiting for the broker if need be), then publishes
    /// until `shutdown` is cancelled, waits for the acknowledgements of what it queued,
    /// and flushes the producer. Only one relay per feed publishes at a time; others
    /// stand by.
    pub async fn run(self, shutdown: CancellationToken) {
        let topics = self.route.topics();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        if !ensure_topics_patiently(&self.kafka, &topics, &self.stuck, &shutdown).await {
            return;
        }
        let relay = &self;
        self.feed
            .follow_pipelined(Self::BATCH_SIZE, Self::BATCHES_IN_FLIGHT, &shutdown, move |events| {
                let published = relay.publish(events);
                async move { published.await.map_err(Into::into) }
            })
            .await;
        self.producer.flush(Duration::from_secs(10)).await;
    }

    /// Queues the messages of `events` with the producer, in feed order, at once; the
    /// returned future completes when each was acknowledged or parked. It fails (the
    /// batch is retried) on any failure that is not the message's own.
    fn publish(&self, events: Vec<FeedEvent>) -> impl Future<Output = anyhow::Result<()>> + '_ {
        let queued = self.queue(&events);
        let feed = self.feed.name().to_owned();
        let started = std::time::Instant::now();
        async move {
            let (used, outgoing) = self.queued(queued).await?;
            let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
            let messages = outgoing.len();
            for message in outgoing {
                match message {
                    Outgoing::Refused { event_id, topic, key, reason } => {
                        self.park(event_id, &topic, key.as_deref(), &reason).await?
                    }
                    Outgoing::Queued { event_id, topic, key, delivery } => match delivery.await {
                        Ok(Ok(_)) => *per_topic.entry(topic).or_default() += 1,
                        Ok(Err((error, _))) if classify_kafka(&error) == KafkaFailure::Permanent => {
                            self.park(
                                event_id,
                                &topic,
                                Some(&key),
                                &format!("the broker refuses the message: {error}"),
                            )
                            .await?;
                        }
                        Ok(Err((error, _))) => return Err(self.recover(&used, error, &topic).await),
                        Err(_) => anyhow::bail!("publishing to {topic}: the producer went away"),
                    },
                }
            }
            for (topic, published) in per_topic {
                telemetry::pipeline::record_published(&topic, published);
            }
            telemetry::pipeline::record_relay_publish_duration(&feed, started.elapsed());
            tracing::debug!(
                events = events.len(),
                messages,
                publish_ms = started.elapsed().as_millis() as u64,
                "relay published a batch"
            );
            Ok(())
        }
    }

    /// Queues the messages of `events`, stopping at the first that fails for a reason
    /// not its own (then the batch is retried once the failure is dealt with).
    fn queue(&self, events: &[FeedEvent]) -> Result<(Current, Vec<Outgoing>), QueueFailed> {
        let used = self.producer.current();
        {
            let mut failed_at = self.queue_failed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match (*failed_at, events.first()) {
                (Some(at), Some(first)) if first.position > at => return Err(QueueFailed::Behind),
                _ => *failed_at = None,
            }
        }
        let now = chrono::Utc::now();
        let feed = self.feed.name();
        let mut outgoing = Vec::new();
        for event in events {
            telemetry::pipeline::record_relay_delay(feed, (now - event.recorded_at).to_std().unwrap_or_default());
            let messages = match self.route.route(event) {
                Ok(messages) => messages,
                Err(Unroutable { topic, reason }) => {
                    outgoing.push(Outgoing::Refused {
                        event_id: event.event_id,
                        topic,
                        key: None,
                        reason: format!("not routable: {reason}"),
                    });
                    continue;
                }
            };
            let trace = event.trace_headers();
            for message in messages {
                let OutgoingMessage { topic, key, envelope } = message;
                let body = match serde_json::to_vec(&envelope) {
                    Ok(body) => body,
                    Err(error) => {
                        let reason = format!("the message does not encode: {error}");
                        outgoing.push(Outgoing::Refused { event_id: event.event_id, topic, key: Some(key), reason });
                        continue;
                    }
                };
                let headers = with_trace_headers(envelope.headers(), &trace);
                let record = FutureRecord::to(&topic).key(&key).payload(&body).headers(headers);
                match used.producer.send_result(record) {
                    Ok(delivery) => outgoing.push(Outgoing::Queued { event_id: event.event_id, topic, key, delivery }),
                    Err((error, _)) if classify_kafka(&error) == KafkaFailure::Permanent => {
                        let reason = format!("the producer refuses the message ({} bytes): {error}", body.len());
                        outgoing.push(Outgoing::Refused { event_id: event.event_id, topic, key: Some(key), reason });
                    }
                    Err((error, _)) => {
                        *self.queue_failed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(event.position);
                        return Err(QueueFailed::Kafka { used, error, topic });
                    }
                }
            }
        }
        Ok((used, outgoing))
    }

    /// Deals with a failure that is not the message's own before the batch is tried
    /// again (see [`ReplaceableProducer::recover_from`]: the producer replaced, the
    /// topics created again, as needed). Returns the error that fails the batch.
    async fn recover(&self, used: &Current, error: KafkaError, topic: &str) -> anyhow::Error {
        let failure = classify_kafka(&error);
        let topics = self.route.topics();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.producer.recover_from(used, &error, &self.kafka, &topics).await;
        // The cause is in the message: the feed logs the error's top line only.
        anyhow::anyhow!("publishing to {topic}: {error} ({failure} failure)")
    }

    /// Parks the message for `topic` of event `event_id`, which can never be
    /// published, with `reason`. A database failure fails the batch (it is retried, and
    /// parking again changes nothing).
    async fn park(&self, event_id: Uuid, topic: &str, key: Option<&str>, reason: &str) -> anyhow::Result<()> {
        let reason = crate::dead_letters::sanitize_reason(reason);
        match crate::dead_letters::park_event(&self.pool, event_id, topic, key, &reason).await {
            Ok(()) => {}
            // Cannot happen with a sanitized reason; the log is then the only record.
            Err(error) if classify_sqlx(&error) == crate::failure::Failure::Permanent => {
                tracing::error!(%error, event.id = %event_id, topic, %reason, "the event cannot be published nor parked; it stays in the event store only");
            }
            Err(error) => return Err(error).context("parking an event that cannot be published"),
        }
        tracing::error!(event.id = %event_id, topic, %reason, "parked an event that cannot be published");
        telemetry::pipeline::record_relay_parked(topic);
        Ok(())
    }
}

/// Why a batch could not be queued.
enum QueueFailed {
    /// An earlier batch could not be queued: this one must wait for it.
    Behind,
    /// The producer refused a message for a reason not its own.
    Kafka { used: Current, error: KafkaError, topic: String },
}

impl<R: Route> Relay<R> {
    /// The batch's queueing, or the error that fails it (after recovery).
    async fn queued(
        &self,
        queued: Result<(Current, Vec<Outgoing>), QueueFailed>,
    ) -> anyhow::Result<(Current, Vec<Outgoing>)> {
        match queued {
            Ok(queued) => Ok(queued),
            Err(QueueFailed::Behind) => anyhow::bail!("an earlier batch could not be queued; starting again from it"),
            Err(QueueFailed::Kafka { used, error, topic }) => Err(self.recover(&used, error, &topic).await),
        }
    }
}
