//! What the tests share: a migrated database of their own, Kafka settings with topics
//! of their own, and reading a whole topic.

use std::time::Duration;

use clap::Parser;
use messaging::{KafkaSettings, Parking, ReplaceableProducer};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;

/// A fresh database with the OMS schema (which has `dead_letters`). Logs are shown
/// with `TEST_LOG=1`, at `RUST_LOG`'s levels when it is set, else info and up.
pub async fn database() -> PgPool {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_test_writer()
            .try_init();
    }
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, "oms", 8, &migrations::OMS).await.expect("migrated")
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaSettings,
}

/// Settings for `brokers` (the shared broker when `None`), with the environment's
/// pass-through properties (as `scripts/test` sets them for the development broker),
/// one partition per topic, no lag reports, and `producer` properties on top.
pub fn kafka(brokers: Option<&str>, producer: &[(&str, &str)]) -> KafkaSettings {
    let shared = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let brokers = brokers.map_or(shared, str::to_owned);
    let cli = Cli::parse_from([
        "test",
        "--kafka-brokers",
        &brokers,
        "--kafka-partitions",
        "1",
        "--kafka-lag-interval-ms",
        "0",
    ]);
    let mut settings = cli.kafka.with_env_properties(std::env::vars());
    settings.producer_properties.extend(producer.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    settings
}

/// A producer with `settings`, as a service makes its one.
pub fn producer(settings: &KafkaSettings) -> std::sync::Arc<ReplaceableProducer> {
    std::sync::Arc::new(ReplaceableProducer::new(settings.producer_config(), "test").expect("a producer"))
}

/// Where a consumer of the test parks: `pool`'s `dead_letters`, copies through a
/// producer with `settings`.
pub fn parking(pool: PgPool, settings: &KafkaSettings) -> Parking {
    Parking { pool, producer: producer(settings) }
}

/// A topic name no other test uses.
pub fn topic(purpose: &str) -> String {
    format!("test.{purpose}.{}", uuid::Uuid::new_v4().simple())
}

/// A message read back: key, body and headers as text.
#[derive(Debug, Clone)]
pub struct Read {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Every message of partition 0 of `topic` from the start, once at least `expected`
/// are there (or `within` has passed: then what there is).
pub async fn read_topic(settings: &KafkaSettings, topic: &str, expected: usize, within: Duration) -> Vec<Read> {
    read_until(settings, topic, within, |read, _| read.len() >= expected).await
}

/// Every message of partition 0 of `topic` from the start, until none came for a
/// second (or `within` has passed).
pub async fn read_all(settings: &KafkaSettings, topic: &str, within: Duration) -> Vec<Read> {
    read_until(settings, topic, within, |_, quiet| quiet).await
}

async fn read_until(
    settings: &KafkaSettings,
    topic: &str,
    within: Duration,
    done: impl Fn(&[Read], bool) -> bool,
) -> Vec<Read> {
    let mut config = settings.consumer_config(&format!("reader-{}", uuid::Uuid::new_v4().simple()));
    config.set("enable.auto.commit", "false");
    let consumer: StreamConsumer = config.create().expect("a reader");
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset(topic, 0, Offset::Beginning).expect("partition");
    consumer.assign(&partitions).expect("assigned");
    let deadline = tokio::time::Instant::now() + within;
    let mut read = Vec::new();
    let mut quiet = false;
    while !done(&read, quiet) {
        let wait = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
        let Ok(received) = tokio::time::timeout_at(wait, consumer.recv()).await else {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            quiet = true;
            continue;
        };
        quiet = false;
        let Ok(message) = received else { continue };
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        read.push(Read {
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    read
}

/// Polls `check` every 100 ms until it is true or `within` has passed; whether it became true.
pub async fn eventually<F: AsyncFnMut() -> bool>(within: Duration, mut check: F) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The dead letters of `pool`: (source, origin, topic, reason, payload is null).
pub async fn dead_letters(pool: &PgPool) -> Vec<(String, String, String, String, bool)> {
    sqlx::query_as("SELECT source, origin, topic, reason, payload IS NULL FROM dead_letters ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("dead letters")
}
