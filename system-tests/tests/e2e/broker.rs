//! Guards the broker we test against: the consumer-group protocol the services rely
//! on (store offsets by hand, commit, resume after the committed offset) works on it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use system_tests::broker;
use system_tests::system::brokers;

/// A message as the test sees it: where it sits and what it says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
}

async fn produce(producer: &rdkafka::producer::FutureProducer, topic: &str, range: std::ops::Range<usize>) {
    for i in range {
        let (key, value) = (format!("key-{}", i % 5), format!("message-{i}"));
        producer
            .send(FutureRecord::to(topic).key(&key).payload(&value), Timeout::After(Duration::from_secs(10)))
            .await
            .unwrap_or_else(|(error, _)| panic!("producing {value}: {error}"));
    }
}

/// Reads from `consumer` until `count` messages came, failing after `timeout`; then
/// makes sure nothing more arrives for a moment.
async fn receive(consumer: &StreamConsumer, count: usize, timeout: Duration) -> Vec<Seen> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while seen.len() < count {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("received {} of {count} messages in {timeout:?}: {seen:?}", seen.len()))
            .expect("consuming");
        seen.push(Seen {
            partition: message.partition(),
            offset: message.offset(),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            value: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
        });
    }
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(1500), consumer.recv()).await {
        let extra = extra.expect("consuming");
        panic!("an unexpected message: partition {} offset {}", extra.partition(), extra.offset());
    }
    seen
}

fn values(seen: &[Seen]) -> BTreeSet<String> {
    seen.iter().map(|s| s.value.clone()).collect()
}

fn joined_consumer(settings: &messaging::KafkaSettings, group: &str, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = broker::manual_consumer_config(settings, group).create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribing");
    consumer
}

/// Stores the offset of each of `messages` (as the service consumer loop does after
/// handling one), commits synchronously, and checks what the broker then holds.
fn store_and_commit(consumer: &StreamConsumer, topic: &str, messages: &[Seen]) {
    for message in messages {
        consumer.store_offset(topic, message.partition, message.offset).expect("storing an offset");
    }
    consumer.commit_consumer_state(CommitMode::Sync).expect("committing");
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    for message in messages {
        let next = expected.entry(message.partition).or_default();
        *next = (*next).max(message.offset + 1);
    }
    let mut list = TopicPartitionList::new();
    for partition in expected.keys() {
        list.add_partition(topic, *partition);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).expect("reading committed offsets");
    for element in committed.elements() {
        assert_eq!(
            element.offset(),
            Offset::Offset(expected[&element.partition()]),
            "committed offset of partition {}",
            element.partition()
        );
    }
}

#[tokio::test]
async fn a_consumer_group_resumes_exactly_after_its_committed_offsets() {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("t{}.broker-check", &run[..10]);
    let group = format!("broker-check-{run}");
    let settings =
        broker::kafka_settings(&[format!("--kafka-brokers={}", brokers()), "--kafka-partitions=2".to_owned()])
            .expect("settings");
    messaging::topics::ensure_topics(&settings, &[&topic]).await.expect("creating the topic");
    let producer = broker::producer(&settings).expect("producer");
    let timeout = Duration::from_secs(20);

    // 1. Read everything there is, store every offset, commit, leave.
    produce(&producer, &topic, 0..12).await;
    let first = joined_consumer(&settings, &group, &topic);
    let seen = receive(&first, 12, timeout).await;
    assert_eq!(
        values(&seen),
        (0..12).map(|i| format!("message-{i}")).collect(),
        "the first member reads every message once"
    );
    let mut by_key: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for message in &seen {
        by_key.entry(&message.key).or_default().insert(message.partition);
    }
    assert!(by_key.values().all(|partitions| partitions.len() == 1), "one key, one partition: {by_key:?}");
    store_and_commit(&first, &topic, &seen);
    drop(first);

    // 2. More messages; a new member of the group reads only those. It stores the
    //    offset of only the first new message of each partition (as if it crashed
    //    while handling the next one), commits, leaves.
    produce(&producer, &topic, 12..20).await;
    let second = joined_consumer(&settings, &group, &topic);
    let mut seen = receive(&second, 8, timeout).await;
    assert_eq!(
        values(&seen),
        (12..20).map(|i| format!("message-{i}")).collect(),
        "resumes after the committed offsets: nothing re-read, nothing skipped"
    );
    seen.sort();
    let mut handled: Vec<Seen> = Vec::new();
    for message in &seen {
        if !handled.iter().any(|h| h.partition == message.partition) {
            handled.push(message.clone());
        }
    }
    store_and_commit(&second, &topic, &handled);
    drop(second);

    // 3. The next member gets exactly the messages whose offsets were not stored.
    let third = joined_consumer(&settings, &group, &topic);
    let unhandled: Vec<Seen> = seen.iter().filter(|m| !handled.contains(m)).cloned().collect();
    let mut again = receive(&third, unhandled.len(), timeout).await;
    again.sort();
    assert_eq!(again, unhandled, "exactly the messages after the committed offsets come again, at the same offsets");
}
