//! Is the broker there? A cheap metadata request (one topic's, whatever the size of
//! the cluster) with a short timeout, its answer kept for a few seconds so that
//! frequent readiness probes (several instances, several probers) do not turn into
//! load on the brokers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::Mutex;

use crate::KafkaSettings;

/// How long the broker may take to answer a metadata request.
pub const METADATA_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long an answer is reused.
pub const ANSWER_TTL: Duration = Duration::from_secs(5);

/// Checks that the bootstrap brokers answer.
pub struct BrokerProbe {
    client: Arc<BaseConsumer>,
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
    /// A probe of the brokers of `settings`, answers reused for [`ANSWER_TTL`]. The
    /// client connects in the background; creating it needs no broker.
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        Self::with_ttl(settings, ANSWER_TTL)
    }

    /// Like [`BrokerProbe::new`], reusing answers for `ttl`.
    pub fn with_ttl(settings: &KafkaSettings, ttl: Duration) -> anyhow::Result<Self> {
        let client: BaseConsumer =
            settings.admin_config().create().context("creating the Kafka client of the readiness probe")?;
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
            && at.elapsed() < self.ttl
        {
            return outcome.clone();
        }
        let (client, topic) = (self.client.clone(), self.topic.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let answer = client.fetch_metadata(Some(&topic), METADATA_TIMEOUT).map(|_| ());
            // Nothing else polls this client: serve what queued up since the last check
            // (connection errors, logs), or it would pile up while the broker is away.
            while client.poll(Duration::ZERO).is_some() {}
            answer
        })
        .await
        .map_err(|e| format!("the metadata request did not complete: {e}"))
        .and_then(|answer| answer.map_err(|e| format!("no metadata from the brokers: {e}")));
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
    async fn an_unreachable_broker_is_reported_down_quickly_and_the_answer_is_reused() {
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
    }
}
