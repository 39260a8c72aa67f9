//! Creating the topics a service needs, when they are missing.
//!
//! The broker's metadata is read first: topics that exist are left alone, so a service
//! that may not create topics (`CreateTopics` not authorized) starts as soon as an
//! operator created them. A broker that restarted empty forgets its topics; the relay
//! and the consumers call [`ensure_topics`] again when publishing finds a topic unknown.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use crate::KafkaSettings;
use crate::client_logs::ClientLogs;
use crate::starvation::StuckReport;

/// How long one metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Why topics could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// The broker refused to create topics that do not exist.
    #[error("topics {missing:?} do not exist and the broker refuses to create them: {code}")]
    Refused {
        /// The topics that are missing.
        missing: Vec<String>,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// The broker could not be asked (unreachable, timed out).
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

impl TopicsError {
    /// Whether creating topics is not allowed to this service (an ACL, not an outage).
    pub fn is_not_authorized(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                code: RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed,
                ..
            }
        )
    }
}

/// The names of the topics the broker knows (with partitions), from its metadata.
pub async fn existing_topics(settings: &KafkaSettings) -> anyhow::Result<BTreeSet<String>> {
    let config = settings.admin_config();
    // librdkafka's metadata request blocks its thread.
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer<ClientLogs> =
            config.create_with_context(ClientLogs).context("creating a Kafka metadata client")?;
        let metadata = client.fetch_metadata(None, METADATA_TIMEOUT).context("reading the broker's metadata")?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.name().to_owned())
            .collect())
    })
    .await
    .context("reading the broker's metadata")?
}

/// Creates each of `topics` that does not exist yet (with the configured partitions
/// and replication). Existing topics are left as they are.
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[&str]) -> Result<(), TopicsError> {
    let existing = existing_topics(settings).await?;
    let missing: Vec<&str> = topics.iter().copied().filter(|topic| !existing.contains(*topic)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<ClientLogs> =
        settings.admin_config().create_with_context(ClientLogs).context("creating the Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|name| NewTopic::new(name, settings.partitions, TopicReplication::Fixed(settings.replication_factor)))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = admin.create_topics(new.iter(), &options).await;
    // Destroying a client blocks until its threads end, which takes a while when the
    // broker just went away or came back: never on an async worker, where a few such
    // drops at once (relays, consumers and re-requests all making sure of their
    // topics after a broker restart) would stall the whole service, HTTP included.
    let _ = tokio::task::spawn_blocking(move || drop(admin)).await;
    let results = results.context("asking the broker to create topics")?;
    let mut refused = None;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => refused = Some(code),
        }
    }
    match refused {
        None => Ok(()),
        Some(code) => Err(TopicsError::Refused { missing: missing.iter().map(|t| (*t).to_owned()).collect(), code }),
    }
}

/// Like [`ensure_topics`], retried with backoff until it succeeds; false when shutdown
/// came first. Services start serving HTTP without the broker and publish once it is
/// there. When topics are missing and this service may not create them, that is said
/// once, clearly, naming them, and it waits for someone who may; meanwhile `stuck`
/// names them too, so that readiness does (the broker itself answers).
pub async fn ensure_topics_patiently(
    settings: &KafkaSettings,
    topics: &[&str],
    stuck: &StuckReport,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    let mut failures = 0u32;
    let mut refusal_logged = false;
    loop {
        match ensure_topics(settings, topics).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(?topics, "topics present");
                }
                if refusal_logged {
                    stuck(None);
                }
                return true;
            }
            Err(error) => {
                failures += 1;
                if let TopicsError::Refused { missing, code } = &error
                    && error.is_not_authorized()
                {
                    // Said again on every attempt: the missing set shrinks as they appear.
                    stuck(Some(format!(
                        "waits for missing topics {} (this service may not create them)",
                        missing.join(", ")
                    )));
                    if !refusal_logged {
                        tracing::error!(?missing, %code, "topics are missing and this service is not allowed to create them; waiting for them to be created");
                        refusal_logged = true;
                    }
                } else if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(error = format!("{error:#}"), failures, "cannot ensure topics yet; retrying");
                }
                let wait = Duration::from_millis(500 * u64::from(failures.min(10)));
                if eventstore::sleep_or_cancel(wait, shutdown).await {
                    return false;
                }
            }
        }
    }
}
