//! The shared broker as the tests that use it see it: its address, and a topic read
//! back from the beginning with a plain consumer.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use uuid::Uuid;

/// The broker the tests share.
pub fn broker() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A message as read back from the broker.
#[derive(Debug, PartialEq)]
pub struct Received {
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its body.
    pub payload: Option<Vec<u8>>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Received {
    /// The value of header `name`, if the message has it with a value.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(key, _)| key == name).and_then(|(_, value)| value.as_deref())
    }
}

/// Every message of `topic`, read from the beginning until `expected` arrived, and a
/// second longer, so that one too many would show.
pub async fn read_topic(topic: &str, expected: usize) -> Vec<Received> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker())
            .set("group.id", format!("topic-reader-{}", Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).expect("metadata");
        let mut partitions = TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            partitions.add_partition_offset(&topic, partition.id(), Offset::Beginning).expect("a partition");
        }
        assert!(partitions.count() > 0, "{topic} has partitions");
        consumer.assign(&partitions).expect("assigning");
        let mut received = Vec::new();
        let mut deadline = Instant::now() + Duration::from_secs(30);
        let mut settled = false;
        while Instant::now() < deadline {
            let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
            let message = message.expect("reading");
            let headers = message
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect())
                .unwrap_or_default();
            received.push(Received {
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers,
            });
            if received.len() >= expected && !settled {
                settled = true;
                deadline = Instant::now() + Duration::from_secs(1);
            }
        }
        received
    })
    .await
    .expect("the reader's thread")
}
