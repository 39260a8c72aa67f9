//! Is the broker there? A cheap metadata request (one topic's, whatever the size of
//! the cluster) with a short timeout, its answer kept for a few seconds so that
//! frequent readiness probes (several instances, several probers) do not turn into
//! load on the brokers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use tokio::sync::Mutex;

use crate::{KafkaSettings, client_logs};

/// How long the broker may take to answer a metadata request.
pub const METADATA_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long an answer is reused.
pub const ANSWER_TTL: Duration = Duration::from_secs(5);

/// How long an answer that the brokers are down is reused at most: less, so that
/// readiness sees them back within about a second of their return rather than up to
/// [`ANSWER_TTL`] later. Concurrent probes still share one request.
pub const DOWN_ANSWER_TTL: Duration = Duration::from_secs(1);

/// The probe client's context: keeps the last connection error librdkafka reported
/// (a refused password, a certificate that does not verify), which says why the
/// brokers do not answer better than the metadata request's own error. The client
/// is a producer that never produces: a producer's poll hands errors to its context
/// with librdkafka's reason, a consumer's only returns their codes.
#[derive(Default)]
struct LastCause(std::sync::Mutex<Option<String>>);

impl ClientContext for LastCause {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        client_logs::log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_logs::error(&error, reason);
        // "All broker connections are down" follows every other cause: not one itself.
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason.to_owned());
        }
    }
}

impl ProducerContext for LastCause {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, (): Self::DeliveryOpaque) {}
}

impl LastCause {
    /// The last cause, kept until the brokers answer (librdkafka reports a refused
    /// login once per reconnection attempt, not once per probe).
    fn after(&self, answered: bool) -> Option<String> {
        let mut cause = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if answered { cause.take() } else { cause.clone() }
    }
}

/// Checks that the bootstrap brokers answer.
pub struct BrokerProbe {
    client: Arc<BaseProducer<LastCause>>,
    topic: String,
    ttl: Duration,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl std::fmt::Debug for BrokerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerProbe").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl BrokerProbe {
    /// A probe of the brokers of `settings`, answers reused for [`ANSWER_TTL`] (those
    /// that the brokers are down for [`DOWN_ANSWER_TTL`]). The
    /// client connects in the background; creating it needs no broker.
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        Self::with_ttl(settings, ANSWER_TTL)
    }

    /// Like [`BrokerProbe::new`], reusing answers for `ttl` (down ones for at most
    /// [`DOWN_ANSWER_TTL`]).
    pub fn with_ttl(settings: &KafkaSettings, ttl: Duration) -> anyhow::Result<Self> {
        let client: BaseProducer<LastCause> = settings
            .admin_config()
            .create_with_context(LastCause::default())
            .context("creating the Kafka client of the readiness probe")?;
        // Asking for one topic keeps the answer small; a topic that does not exist yet
        // is answered too (consumers never ask the broker to create it).
        let topic = settings.topics.order_events.clone();
        Ok(Self { client: Arc::new(client), topic, ttl, last: Mutex::new(None) })
    }

    /// `Ok` when a broker answered a metadata request (now or within the TTL), else
    /// why not. Concurrent callers share one request.
    pub async fn check(&self) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, outcome)) = last.as_ref()
            && at.elapsed() < if outcome.is_ok() { self.ttl } else { self.ttl.min(DOWN_ANSWER_TTL) }
        {
            return outcome.clone();
        }
        let (client, topic) = (self.client.clone(), self.topic.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let answer = client.client().fetch_metadata(Some(&topic), METADATA_TIMEOUT).map(|_| ());
            // Nothing else polls this client: serve what queued up since the last check
            // (connection errors, logs), or it would pile up while the broker is away.
            // (A producer's poll serves one event per turn until its deadline.)
            client.poll(Duration::from_millis(10));
            let cause = client.context().after(answer.is_ok());
            answer.map_err(|e| match cause {
                Some(cause) => format!("no metadata from the brokers: {e}; the last connection error: {cause}"),
                None => format!("no metadata from the brokers: {e}"),
            })
        })
        .await
        .map_err(|e| format!("the metadata request did not complete: {e}"))
        .and_then(|answer| answer);
        *last = Some((Instant::now(), outcome.clone()));
        outcome
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::settings::Cli;

    #[tokio::test]
    async fn an_unreachable_broker_is_reported_down_quickly_and_the_answer_reused_for_a_second() {
        let settings = Cli::parse_from(["x", "--kafka-brokers", "127.0.0.1:1"]).kafka;
        let probe = BrokerProbe::with_ttl(&settings, Duration::from_secs(60)).expect("probe");

        let started = Instant::now();
        let first = probe.check().await;
        let asked = started.elapsed();
        assert!(first.is_err(), "nothing listens on port 1: {first:?}");
        assert!(asked < METADATA_TIMEOUT + Duration::from_secs(1), "gave up after {asked:?}");

        let started = Instant::now();
        assert_eq!(probe.check().await, first, "the same answer within the TTL");
        assert!(started.elapsed() < Duration::from_millis(100), "reused, not asked again: {:?}", started.elapsed());

        // A down answer is reused for less than the TTL: then the brokers are asked
        // again, which takes as long as the first request did.
        tokio::time::sleep(DOWN_ANSWER_TTL).await;
        let started = Instant::now();
        assert!(probe.check().await.is_err(), "still nothing on port 1");
        assert!(started.elapsed() > asked / 2, "asked again after {DOWN_ANSWER_TTL:?}: {:?}", started.elapsed());
    }
}
