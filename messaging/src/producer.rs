//! A producer that is replaced when its client fails for good.
//!
//! An idempotent producer whose broker went away for longer than the message timeout
//! can end fenced (`ProducerFenced`) or with its idempotence state lost: librdkafka
//! then raises a fatal error and fails every later message, forever. Such a client is
//! not retried but replaced by a new one, built from the same configuration.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;

use crate::KafkaSettings;
use crate::client_logs::ClientLogs;
use crate::failure::{KafkaFailure, classify_kafka};

/// The current producer and which one it is.
#[derive(Clone)]
pub struct Current {
    /// Counts replacements, so that several failures of one producer replace it once.
    pub generation: u64,
    /// The producer.
    pub producer: FutureProducer<ClientLogs>,
}

/// A producer, replaced after a fatal error.
pub struct ReplaceableProducer {
    config: ClientConfig,
    role: &'static str,
    current: Mutex<Current>,
}

impl ReplaceableProducer {
    /// A producer built from `config`; `role` names it in logs.
    pub fn new(config: ClientConfig, role: &'static str) -> anyhow::Result<Self> {
        let producer =
            config.create_with_context(ClientLogs).with_context(|| format!("creating the {role} producer"))?;
        Ok(Self { config, role, current: Mutex::new(Current { generation: 0, producer }) })
    }

    /// The producer to use now.
    pub fn current(&self) -> Current {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether `used`'s client has failed for good: it reports a fatal error, or
    /// `error` (what an operation with it failed with) is one that means so.
    pub fn is_fatal(used: &Current, error: Option<&KafkaError>) -> bool {
        used.producer.client().fatal_error().is_some()
            || error.is_some_and(|e| classify_kafka(e) == KafkaFailure::Fatal)
    }

    /// Replaces producer `used` when it has failed for good (see [`Self::is_fatal`]);
    /// nothing when it was replaced already. True when `used` is no longer current.
    pub fn recover(&self, used: &Current, error: Option<&KafkaError>) -> bool {
        if !Self::is_fatal(used, error) {
            return false;
        }
        let fatal = used.producer.client().fatal_error();
        self.replace(used, &format!("the producer failed for good: {fatal:?}, {error:?}"))
    }

    /// Replaces producer `used` by a new one, because of `why`; nothing when it was
    /// replaced already. True when `used` is no longer current. The old client is
    /// destroyed in the background (that blocks while it purges its queue).
    pub fn replace(&self, used: &Current, why: &str) -> bool {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.generation != used.generation {
            return true;
        }
        match self.config.create_with_context::<_, FutureProducer<ClientLogs>>(ClientLogs) {
            Ok(producer) => {
                tracing::warn!(role = self.role, why, "replaced the Kafka producer with a new one");
                let old = std::mem::replace(&mut *current, Current { generation: used.generation + 1, producer });
                drop(current);
                tokio::task::spawn_blocking(move || drop(old));
                true
            }
            Err(create_error) => {
                tracing::error!(role = self.role, %create_error, "cannot create a new Kafka producer; retrying later");
                false
            }
        }
    }

    /// Deals with `error`, a failure of `used` to deliver to `topics` that is not the
    /// message's own, before the send is tried again: a producer that failed for good
    /// is replaced; otherwise the topics are checked (one metadata request) and the
    /// missing ones created, and when messages timed out although the broker answers,
    /// the producer is replaced too. A broker that restarted empty forgot the topics
    /// and the producer's id, but the producer rarely says so: its messages time out,
    /// and a new producer registers afresh.
    pub async fn recover_from(&self, used: &Current, error: &KafkaError, settings: &KafkaSettings, topics: &[&str]) {
        if self.recover(used, Some(error)) {
            return;
        }
        match crate::topics::ensure_topics(settings, topics).await {
            Ok(()) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut) => {
                self.replace(used, "messages timed out while the broker answers");
            }
            Ok(()) => {}
            Err(error) => tracing::debug!(error = format!("{error:#}"), ?topics, "cannot check or create the topics"),
        }
    }

    /// Waits up to `timeout` for what is queued to be delivered (on a blocking
    /// thread: librdkafka's flush blocks).
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.current().producer;
        let _ = tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await;
    }
}
