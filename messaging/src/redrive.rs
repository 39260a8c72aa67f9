//! Re-driving dead letters (`dlq replay`): a consumed message produced back to the topic
//! it came from, as it was; an event the relay could not publish published again
//! through the service's [`Route`]. Each message carries the header
//! [`REPLAY_OF_HEADER`] (the dead letter's id), so that a replay can be told from the
//! original in logs and on the wire. Every call returns only once the broker
//! acknowledged what it sent, so the caller can mark the dead letter replayed then.

use std::collections::HashSet;
use std::sync::Mutex;

use anyhow::Context;
use eventstore::FeedEvent;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::client_logs::ClientLogs;
use crate::envelope::with_trace_headers;
use crate::failure::{KafkaFailure, classify_kafka};
use crate::topics::ensure_topics;
use crate::{BrokerProbe, KafkaSettings, Route};

/// The header a re-driven message carries: the id of its dead letter.
pub const REPLAY_OF_HEADER: &str = "dlq-replay-of";

/// Produces dead letters back to the broker.
pub struct Redriver {
    kafka: KafkaSettings,
    producer: FutureProducer<ClientLogs>,
    /// Topics known to exist: each is ensured once per run.
    ensured: Mutex<HashSet<String>>,
}

impl Redriver {
    /// A re-driver with the service's producer configuration (idempotent, acknowledged
    /// by all in-sync replicas).
    pub fn new(kafka: &KafkaSettings) -> anyhow::Result<Self> {
        let producer =
            kafka.producer_config().create_with_context(ClientLogs).context("creating the Kafka producer")?;
        Ok(Self { kafka: kafka.clone(), producer, ensured: Mutex::new(HashSet::new()) })
    }

    /// `Ok` when a broker answers, else why not: checked before re-driving anything,
    /// so that an unreachable broker fails the command at once rather than every dead
    /// letter after a timeout.
    pub async fn check_broker(&self) -> anyhow::Result<()> {
        let probe = BrokerProbe::with_ttl(&self.kafka, std::time::Duration::ZERO)?;
        probe
            .check()
            .await
            .map_err(|reason| anyhow::anyhow!("the broker at {} does not answer: {reason}", self.kafka.brokers))
    }

    /// Produces a consumed message back to `topic` as it was (key, payload, headers
    /// in order), adding [`REPLAY_OF_HEADER`] = `replay_of`; returns once the broker
    /// acknowledged it.
    pub async fn produce(
        &self,
        replay_of: i64,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(String, Option<Vec<u8>>)],
    ) -> anyhow::Result<()> {
        let headers = headers.iter().fold(OwnedHeaders::new_with_capacity(headers.len() + 1), |all, (key, value)| {
            all.insert(Header { key: key.as_str(), value: value.as_deref() })
        });
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(replayed(headers, replay_of));
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.ensure(topic).await?;
        self.send(record).await
    }

    /// Publishes the messages `route` makes of `event` for `topic` (the one the relay
    /// meant), as the relay would, with [`REPLAY_OF_HEADER`] = `replay_of`; returns how
    /// many once the broker acknowledged them all. An error when the route cannot route
    /// the event (it still does not decode) or makes no message for `topic` (the topic
    /// was renamed since).
    pub async fn republish<R: Route>(
        &self,
        replay_of: i64,
        route: &R,
        event: &FeedEvent,
        topic: &str,
    ) -> anyhow::Result<usize> {
        let messages = route.route(event).with_context(|| format!("routing event {}", event.event_id))?;
        let messages: Vec<_> = messages.into_iter().filter(|message| message.topic == topic).collect();
        anyhow::ensure!(
            !messages.is_empty(),
            "the route makes no message for {topic} of event {} ({})",
            event.event_id,
            event.event_type
        );
        self.ensure(topic).await?;
        let trace = event.trace_headers();
        for message in &messages {
            let body = serde_json::to_vec(&message.envelope).context("serializing the message")?;
            let headers = replayed(with_trace_headers(message.envelope.headers(), &trace), replay_of);
            self.send(FutureRecord::to(topic).key(&message.key).payload(&body).headers(headers)).await?;
        }
        Ok(messages.len())
    }

    /// Whether `error` (of [`Self::produce`] or [`Self::republish`]) means the broker
    /// is away or the client unusable, so that re-driving more now would fail alike
    /// (each after the message timeout), rather than that this message was refused.
    pub fn is_outage(error: &anyhow::Error) -> bool {
        error.chain().any(|cause| match cause.downcast_ref::<KafkaError>() {
            Some(kafka) => classify_kafka(kafka) != KafkaFailure::Permanent,
            None => cause.downcast_ref::<Unavailable>().is_some(),
        })
    }

    async fn ensure(&self, topic: &str) -> anyhow::Result<()> {
        let known = |ensured: &Mutex<HashSet<String>>| {
            ensured.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(topic)
        };
        if !known(&self.ensured) {
            // A broker that restarted empty forgot the topic; producing to it would wait
            // for the message timeout and fail.
            ensure_topics(&self.kafka, &[topic]).await.context(Unavailable)?;
            self.ensured.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(topic.to_owned());
        }
        Ok(())
    }

    async fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
        &self,
        record: FutureRecord<'_, K, P>,
    ) -> anyhow::Result<()> {
        let topic = record.topic.to_owned();
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(error, _)| error)
            .with_context(|| format!("queueing for {topic}"))?;
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((error, _))) => Err(error).with_context(|| format!("publishing to {topic}")),
            Err(_) => {
                Err(anyhow::Error::new(Unavailable).context(format!("publishing to {topic}: the producer went away")))
            }
        }
    }
}

fn replayed(headers: OwnedHeaders, replay_of: i64) -> OwnedHeaders {
    headers.insert(Header { key: REPLAY_OF_HEADER, value: Some(replay_of.to_string().as_bytes()) })
}

/// The broker could not be reached (or the producer is gone): nothing can be re-driven
/// now.
#[derive(Debug, thiserror::Error)]
#[error("the broker is unavailable")]
struct Unavailable;
