//! A producer that is replaced when its client fails for good.
//!
//! An idempotent producer whose broker went away for longer than the message timeout
//! can end fenced (`ProducerFenced`) or with its idempotence state lost: librdkafka
//! then raises a fatal error and fails every later message, forever. Such a client is
//! not retried but replaced by a new one, built from the same configuration.

use std::sync::Mutex;
use std::time::Duration;

use crate::client_logs::ClientLogs;
use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;

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

    /// Waits up to `timeout` for what is queued to be delivered (on a blocking
    /// thread: librdkafka's flush blocks).
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.current().producer;
        let _ = tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await;
    }
}
