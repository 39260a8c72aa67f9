//! The outbox relay over a real feed: what the broker refuses for good, and events its
//! route cannot decode, are parked and the events behind them published in order; a
//! broker paused for longer than the producer's message timeout is published to in
//! full once it is back (where the producer used to stay fenced), parking nothing; a
//! broker restarted keeps what it had and one restarted empty gets the topic again.

use std::time::Duration;

use eventstore::{Feed, FeedEvent};
use messaging::{Envelope, OutgoingMessage, Relay, Route, Unroutable};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dev_broker::DevBroker;
use crate::support::{dead_letters, eventually, kafka, producer, read_all, topic};

/// Every event to one topic, keyed by aggregate; events of type `Undecodable` do not route.
struct AllEvents {
    topic: String,
}

impl Route for AllEvents {
    fn topics(&self) -> Vec<String> {
        vec![self.topic.clone()]
    }

    fn route(&self, event: &FeedEvent) -> Result<Vec<OutgoingMessage>, Unroutable> {
        if event.event_type == "Undecodable" {
            return Err(Unroutable { topic: self.topic.clone(), reason: "its payload does not decode".to_owned() });
        }
        Ok(vec![OutgoingMessage {
            topic: self.topic.clone(),
            key: event.aggregate_id.clone(),
            envelope: Envelope::from_feed(event, event.event_type.clone(), event.fields()),
        }])
    }
}

/// Appends event `sequence` of order `order` (its own transaction) with a note of
/// `note_bytes` characters; returns its id.
async fn append(pool: &PgPool, order: &str, sequence: i64, event_type: &str, note_bytes: usize) -> Uuid {
    let payload = serde_json::json!({ event_type: { "note": "x".repeat(note_bytes) } });
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Order', $1, $2, $3, '1.0', $4, '{}') RETURNING event_id",
    )
    .bind(order)
    .bind(sequence)
    .bind(event_type)
    .bind(payload)
    .fetch_one(pool)
    .await
    .expect("appended")
}

/// The sequences on `topic`, in the order they were published (repeats included).
async fn published(settings: &messaging::KafkaSettings, topic: &str) -> Vec<i64> {
    read_all(settings, topic, Duration::from_secs(5))
        .await
        .iter()
        .map(|m| serde_json::from_slice::<Envelope>(&m.payload).expect("an envelope").sequence)
        .collect()
}

/// The sequences in order of first appearance.
fn first_appearances(sequences: &[i64]) -> Vec<i64> {
    let mut seen = Vec::new();
    for sequence in sequences {
        if !seen.contains(sequence) {
            seen.push(*sequence);
        }
    }
    seen
}

#[tokio::test]
async fn an_event_too_large_to_publish_or_not_routable_is_parked_and_the_events_behind_it_go_on() {
    let pool = database_for_relay().await;
    // A producer limit far below the broker's makes "too large" cheap.
    let settings = kafka(None, &[("message.max.bytes", "10000")]);
    let topic = topic("relay-parks");
    let mut ids = Vec::new();
    for sequence in 1..=6 {
        let (event_type, note) = match sequence {
            3 => ("OrderPlaced", 20_000),
            5 => ("Undecodable", 10),
            _ => ("OrderPlaced", 10),
        };
        ids.push(append(&pool, "o-1", sequence, event_type, note).await);
    }
    let shutdown = CancellationToken::new();
    let relay =
        Relay::new(pool.clone(), "test-relay", producer(&settings), &settings, AllEvents { topic: topic.clone() });
    let running = tokio::spawn(relay.run(shutdown.clone()));

    let feed = Feed::new(pool.clone(), "test-relay");
    let last = feed.read_after(Default::default(), 100).await.expect("the feed").last().expect("events").position;
    let passed = eventually(Duration::from_secs(30), async || feed.checkpoint().await.is_ok_and(|p| p == last)).await;
    let parked = dead_letters(&pool).await;
    let sequences = published(&settings, &topic).await;
    shutdown.cancel();
    running.await.expect("the relay stopped");

    assert!(passed, "the checkpoint moved past every event; parked: {parked:?}");
    assert_eq!(first_appearances(&sequences), [1, 2, 4, 6], "the others published, in order: {sequences:?}");
    assert_eq!(parked.len(), 2, "{parked:?}");
    let (source, origin, parked_topic, reason, payload_null) = &parked[0];
    assert_eq!((source.as_str(), origin, parked_topic, *payload_null), ("relay", &ids[2].to_string(), &topic, true));
    assert!(reason.contains("MessageSizeTooLarge"), "{reason}");
    let (source, origin, _, reason, _) = &parked[1];
    assert_eq!((source.as_str(), origin), ("relay", &ids[4].to_string()));
    assert!(reason.contains("does not decode"), "{reason}");
    let event_ids: Vec<Option<Uuid>> =
        sqlx::query_scalar("SELECT event_id FROM dead_letters ORDER BY id").fetch_all(&pool).await.expect("ids");
    assert_eq!(event_ids, [Some(ids[2]), Some(ids[4])]);
}

#[tokio::test]
async fn a_broker_paused_past_the_message_timeout_gets_everything_once_it_is_back() {
    let broker = DevBroker::start().await.expect("a private development broker");
    let pool = database_for_relay().await;
    let settings = kafka(Some(&broker.address), &[("message.timeout.ms", "5000")]);
    let topic = topic("relay-pause");
    for sequence in 1..=10 {
        append(&pool, "o-1", sequence, "OrderPlaced", 10).await;
    }
    let shutdown = CancellationToken::new();
    let relay =
        Relay::new(pool.clone(), "test-relay", producer(&settings), &settings, AllEvents { topic: topic.clone() });
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let before = eventually(Duration::from_secs(20), async || published(&settings, &topic).await.len() >= 10).await;
    assert!(before, "published before the pause");

    broker.pause().expect("pausing the broker");
    for sequence in 11..=20 {
        append(&pool, "o-1", sequence, "OrderPlaced", 10).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.resume().expect("resuming the broker");
    let resumed = tokio::time::Instant::now();

    let mut sequences = Vec::new();
    let all = eventually(Duration::from_secs(40), async || {
        sequences = published(&settings, &topic).await;
        first_appearances(&sequences).len() == 20
    })
    .await;
    let took = resumed.elapsed();
    let parked = dead_letters(&pool).await;
    shutdown.cancel();
    running.await.expect("the relay stopped");
    assert!(all, "all 20 events published after the resume: {sequences:?}");
    assert_eq!(first_appearances(&sequences), (1..=20).collect::<Vec<_>>(), "in order");
    assert_eq!(parked, vec![], "a transient failure parks nothing");
    eprintln!("published everything {took:?} after the broker's resume");
}

#[tokio::test]
async fn a_broker_restarted_cleanly_keeps_what_was_published_and_the_relay_goes_on() {
    let mut broker = DevBroker::start().await.expect("a private development broker");
    let PublishedFive { pool, settings, topic, shutdown, running } =
        relay_that_published_five(&broker, "relay-clean-restart").await;

    broker.restart().await.expect("restarting the broker");
    for sequence in 6..=10 {
        append(&pool, "o-1", sequence, "OrderPlaced", 10).await;
    }
    let mut sequences = Vec::new();
    let all = eventually(Duration::from_secs(40), async || {
        sequences = published(&settings, &topic).await;
        first_appearances(&sequences).len() == 10
    })
    .await;
    let parked = dead_letters(&pool).await;
    shutdown.cancel();
    running.await.expect("the relay stopped");
    assert!(all, "the ten events on the topic, the first five kept over the restart: {sequences:?}");
    assert_eq!(first_appearances(&sequences), (1..=10).collect::<Vec<_>>(), "in order");
    assert_eq!(&sequences[..5], [1, 2, 3, 4, 5], "what was published before the restart is still there, once");
    assert_eq!(parked, vec![], "a restart parks nothing");
}

#[tokio::test]
async fn a_relay_whose_broker_restarted_empty_creates_its_topic_again_and_publishes() {
    let mut broker = DevBroker::start().await.expect("a private development broker");
    let PublishedFive { pool, settings, topic, shutdown, running } =
        relay_that_published_five(&broker, "relay-restart").await;

    broker.start_empty().await.expect("restarting the broker empty");
    let restarted = tokio::time::Instant::now();
    for sequence in 6..=10 {
        append(&pool, "o-1", sequence, "OrderPlaced", 10).await;
    }
    let mut sequences = Vec::new();
    let all = eventually(Duration::from_secs(40), async || {
        sequences = published(&settings, &topic).await;
        (6..=10).all(|s| sequences.contains(&s))
    })
    .await;
    let took = restarted.elapsed();
    let parked = dead_letters(&pool).await;
    shutdown.cancel();
    running.await.expect("the relay stopped");
    assert!(all, "the events after the restart published on the new broker: {sequences:?}");
    let after: Vec<i64> = first_appearances(&sequences).into_iter().filter(|s| *s >= 6).collect();
    assert_eq!(after, [6, 7, 8, 9, 10], "in order");
    assert_eq!(parked, vec![], "a transient failure parks nothing");
    let topics = messaging::topics::existing_topics(&settings).await.expect("metadata");
    assert!(topics.contains(&topic), "the topic exists again: {topics:?}");
    eprintln!("published on the restarted broker within {took:?}");
}

/// A relay running on `broker`, to a new topic named for `purpose`, that has
/// published the first five events of order `o-1`.
struct PublishedFive {
    pool: PgPool,
    settings: messaging::KafkaSettings,
    topic: String,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<()>,
}

async fn relay_that_published_five(broker: &DevBroker, purpose: &str) -> PublishedFive {
    let pool = database_for_relay().await;
    let settings = kafka(Some(&broker.address), &[("message.timeout.ms", "5000")]);
    let topic = topic(purpose);
    for sequence in 1..=5 {
        append(&pool, "o-1", sequence, "OrderPlaced", 10).await;
    }
    let shutdown = CancellationToken::new();
    let relay =
        Relay::new(pool.clone(), "test-relay", producer(&settings), &settings, AllEvents { topic: topic.clone() });
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let before = eventually(Duration::from_secs(20), async || published(&settings, &topic).await.len() >= 5).await;
    assert!(before, "published before the restart");
    PublishedFive { pool, settings, topic, shutdown, running }
}

async fn database_for_relay() -> PgPool {
    crate::support::database().await
}
