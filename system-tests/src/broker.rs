//! Direct access to the broker for tests: settings, a producer, how far a consumer
//! group is behind, and reading a whole topic without joining a group.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use messaging::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// How long one metadata or offset request to the broker may take.
const REQUEST: Duration = Duration::from_secs(10);

#[derive(Parser)]
struct KafkaCli {
    #[command(flatten)]
    kafka: KafkaSettings,
}

/// Kafka settings from service-style `flags` (unknown flags are ignored), with the
/// `KAFKA_PRODUCER_*` / `KAFKA_CONSUMER_*` variables applied as the services do.
pub fn kafka_settings(flags: &[String]) -> anyhow::Result<KafkaSettings> {
    let known = ["--kafka-", "--topic-"];
    let flags = flags.iter().filter(|flag| known.iter().any(|prefix| flag.starts_with(prefix)));
    let cli = KafkaCli::try_parse_from(std::iter::once("test".to_owned()).chain(flags.cloned()))
        .context("parsing Kafka flags")?;
    Ok(cli.kafka.with_env_properties(std::env::vars()))
}

/// A producer for tests, configured as the services' producers are.
pub fn producer(settings: &KafkaSettings) -> anyhow::Result<FutureProducer> {
    settings.producer_config().create().context("creating a test producer")
}

/// A consumer configuration in `group` that neither stores nor commits by itself.
pub fn manual_consumer_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut config = settings.consumer_config(group);
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    config
}

/// The partitions of `topic`, from the broker's metadata.
pub fn partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST).with_context(|| format!("metadata of {topic}"))?;
    let Some(topic_metadata) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("no metadata for {topic}")
    };
    if let Some(error) = topic_metadata.error() {
        bail!("topic {topic}: {error:?}");
    }
    Ok(topic_metadata.partitions().iter().map(|p| p.id()).collect())
}

/// Messages of `topic` that consumer group `group` has not committed yet (summed over
/// partitions); a partition the group never committed counts from its low watermark.
pub fn group_lag(settings: &KafkaSettings, group: &str, topic: &str) -> anyhow::Result<i64> {
    let (consumer, committed) = read_committed(settings, group, topic)?;
    let mut lag = 0;
    for (partition, committed) in committed {
        let (low, high) = consumer.fetch_watermarks(topic, partition, REQUEST).context("fetching watermarks")?;
        lag += (high - committed.unwrap_or(low)).max(0);
    }
    Ok(lag)
}

/// Consumer group `group`'s committed offset in each partition of `topic` (none where
/// it never committed).
pub fn committed_offsets(
    settings: &KafkaSettings,
    group: &str,
    topic: &str,
) -> anyhow::Result<std::collections::BTreeMap<i32, Option<i64>>> {
    Ok(read_committed(settings, group, topic)?.1)
}

/// [`committed_offsets`], and the consumer that asked (to ask the broker more).
fn read_committed(
    settings: &KafkaSettings,
    group: &str,
    topic: &str,
) -> anyhow::Result<(BaseConsumer, std::collections::BTreeMap<i32, Option<i64>>)> {
    // Not subscribed, so it never joins the group: it only asks for the group's offsets.
    let consumer: BaseConsumer =
        manual_consumer_config(settings, group).create().context("creating an offset reader")?;
    let mut list = TopicPartitionList::new();
    for partition in partitions(&consumer, topic)? {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, REQUEST).context("fetching committed offsets")?;
    let offsets = committed
        .elements()
        .iter()
        .map(|element| {
            let offset = match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            };
            (element.partition(), offset)
        })
        .collect();
    Ok((consumer, offsets))
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct ReadMessage {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, as text.
    pub key: Option<String>,
    /// Its body.
    pub payload: Option<Vec<u8>>,
    /// Its headers, as text.
    pub headers: Vec<(String, String)>,
}

impl ReadMessage {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(self.payload.as_deref()?).ok()
    }
}

/// [`read_topic`] for async code: read on a blocking thread.
pub async fn read_topic_async(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<ReadMessage>> {
    let (settings, topic) = (settings.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_topic(&settings, &topic, timeout))
        .await
        .context("the topic reader's thread")?
}

/// Every message of `topic` up to its current high watermarks, read without a
/// consumer group. Blocking: async code calls [`read_topic_async`].
pub fn read_topic(settings: &KafkaSettings, topic: &str, timeout: Duration) -> anyhow::Result<Vec<ReadMessage>> {
    let group = format!("reader-{}", uuid::Uuid::new_v4().simple());
    let consumer: BaseConsumer =
        manual_consumer_config(settings, &group).create().context("creating a topic reader")?;
    let mut list = TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = std::collections::HashMap::new();
    for partition in partitions(&consumer, topic)? {
        let (low, high) = consumer.fetch_watermarks(topic, partition, REQUEST).context("fetching watermarks")?;
        if high > low {
            list.add_partition_offset(topic, partition, Offset::Offset(low)).context("assigning")?;
            remaining += high - low;
            ends.insert(partition, high);
        }
    }
    if remaining == 0 {
        return Ok(Vec::new());
    }
    consumer.assign(&list).context("assigning partitions")?;
    let deadline = std::time::Instant::now() + timeout;
    let mut messages = Vec::new();
    while messages.iter().filter(|m: &&ReadMessage| m.offset < ends[&m.partition]).count() < remaining as usize {
        if std::time::Instant::now() > deadline {
            bail!("read {} of {remaining} messages of {topic} in {timeout:?}", messages.len());
        }
        let Some(received) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = received.with_context(|| format!("reading {topic}"))?;
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (h.key.to_owned(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        messages.push(ReadMessage {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    messages.retain(|m| m.offset < ends[&m.partition]);
    Ok(messages)
}
