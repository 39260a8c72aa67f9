//! Creating the topics a service needs, when they are missing.

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::KafkaSettings;

/// Creates each of `topics` that does not exist yet (with the configured partitions
/// and replication). Existing topics are left as they are.
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = settings.admin_config().create().context("creating the Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| NewTopic::new(name, settings.partitions, TopicReplication::Fixed(settings.replication_factor)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(Duration::from_secs(15)));
    let results = admin.create_topics(new.iter(), &options).await.context("asking the broker to create topics")?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Like [`ensure_topics`], retried until it succeeds; false when shutdown came first.
/// Services start serving HTTP without the broker and publish once it is there.
pub async fn ensure_topics_patiently(settings: &KafkaSettings, topics: &[&str], shutdown: &tokio_util::sync::CancellationToken) -> bool {
    let mut failures = 0u32;
    loop {
        match ensure_topics(settings, topics).await {
            Ok(()) => return true,
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(error = format!("{error:#}"), failures, "cannot create topics yet; retrying");
                }
                let wait = Duration::from_millis(500 * u64::from(failures.min(10)));
                if eventstore::sleep_or_cancel(wait, shutdown).await {
                    return false;
                }
            }
        }
    }
}
