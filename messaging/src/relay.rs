//! The outbox relay: publishes committed events, read from the commit-ordered feed, to
//! Kafka; advances its checkpoint only after the broker acknowledged every message of
//! a batch. A crash anywhere means some messages are published again (at least once,
//! in per-aggregate order), never that one is skipped.
//!
//! Each message carries, besides the envelope's id headers, the W3C trace context its
//! event kept when its command ran, so its consumers continue the request's trace,
//! not the relay's. The relay's lag (committed events not yet published) and what it
//! published per topic are metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use eventstore::{CommitNotifier, Feed, FeedEvent};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use anyhow::Context;

use crate::envelope::with_trace_headers;
use crate::topics::ensure_topics_patiently;
use crate::{KafkaSettings, OutgoingMessage};

/// Which messages a stored event becomes (none, one, or several).
pub trait Route: Send + Sync + 'static {
    /// Every topic this route may publish to (created at start when missing).
    fn topics(&self) -> Vec<String>;

    /// The messages for `event`; an event of no interest outside maps to none.
    fn route(&self, event: &FeedEvent) -> Vec<OutgoingMessage>;
}

/// Publishes one schema's events to Kafka.
pub struct Relay<R> {
    feed: Feed,
    kafka: KafkaSettings,
    producer: FutureProducer,
    route: R,
}

impl<R: Route> Relay<R> {
    /// Events per batch: one checkpoint write per batch.
    const BATCH_SIZE: i64 = 500;

    /// Batches published at once: the relay reads and queues the next batch while the
    /// broker acknowledges earlier ones (the idempotent producer keeps their order).
    const BATCHES_IN_FLIGHT: usize = 4;

    /// A relay reading the feed of `pool`'s schema under the checkpoint `name`.
    pub fn new(pool: PgPool, name: &str, kafka: &KafkaSettings, route: R) -> anyhow::Result<Self> {
        let producer = kafka.producer_config().create().context("creating the Kafka producer")?;
        let linger = Duration::from_millis(kafka.relay_linger_ms);
        let feed = Feed::new(pool, name).reporting_lag_as(telemetry::FeedReader::Relay).lingering(linger);
        Ok(Self { feed, kafka: kafka.clone(), producer, route })
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
        if !ensure_topics_patiently(&self.kafka, &topics, &shutdown).await {
            return;
        }
        let relay = &self;
        self.feed
            .follow_pipelined(Self::BATCH_SIZE, Self::BATCHES_IN_FLIGHT, &shutdown, |events| {
                let queued = relay.publish(&events);
                async move { queued?.await.map_err(Into::into) }
            })
            .await;
        let _ = self.producer.flush(Timeout::After(Duration::from_secs(10)));
    }

    /// Queues the messages of `events` with the producer, in feed order, at once; the
    /// returned future completes when the broker acknowledged them all.
    fn publish(&self, events: &[FeedEvent]) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + use<R>> {
        let now = chrono::Utc::now();
        let mut deliveries = Vec::new();
        let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
        let feed = self.feed.name().to_owned();
        for event in events {
            telemetry::pipeline::record_relay_delay(&feed, (now - event.recorded_at).to_std().unwrap_or_default());
            let trace = event.trace_headers();
            for message in self.route.route(event) {
                let body = serde_json::to_vec(&message.envelope)?;
                let headers = with_trace_headers(message.envelope.headers(), &trace);
                let record = FutureRecord::to(&message.topic).key(&message.key).payload(&body).headers(headers);
                let delivery = self.producer.send_result(record).map_err(|(error, _)| anyhow::anyhow!("queueing for {}: {error}", message.topic))?;
                deliveries.push((message.topic.clone(), delivery));
                *per_topic.entry(message.topic).or_default() += 1;
            }
        }
        let (messages, events) = (deliveries.len(), events.len());
        let started = std::time::Instant::now();
        Ok(async move {
            for (topic, delivery) in deliveries {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((error, _))) => anyhow::bail!("publishing to {topic}: {error}"),
                    Err(_) => anyhow::bail!("publishing to {topic}: the producer went away"),
                }
            }
            for (topic, published) in per_topic {
                telemetry::pipeline::record_published(&topic, published);
            }
            telemetry::pipeline::record_relay_publish_duration(&feed, started.elapsed());
            tracing::debug!(events, messages, publish_ms = started.elapsed().as_millis() as u64, "relay published a batch");
            Ok(())
        })
    }
}
