//! The consumer loop against the real broker and PostgreSQL: a message the database
//! refuses for good is parked alone (a row in `dead_letters` and a copy on the
//! dead-letter topic) and the rest of its batch is applied; a transient failure is
//! retried until it passes, and parks nothing; a consumer the group leaves without
//! partitions after its broker restarted empty says it is stuck, is replaced, and
//! consumes again.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use messaging::starvation::unwatched;
use messaging::{Handled, IncomingMessage, MessageHandler, Topics, Verdict, run_consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::dev_broker::DevBroker;
use crate::support::{database, dead_letters, eventually, kafka, parking, read_topic, topic};

/// Stores each message's body as jsonb in `notes`, a batch per transaction; the first
/// `transient` calls fail with a serialization failure (40001) first.
struct Notes {
    pool: PgPool,
    transient: usize,
    calls: AtomicUsize,
    batch_sizes: Mutex<Vec<usize>>,
}

impl Notes {
    async fn new(pool: &PgPool, transient: usize) -> Arc<Self> {
        sqlx::query("CREATE TABLE notes (id text PRIMARY KEY, body jsonb NOT NULL)")
            .execute(pool)
            .await
            .expect("notes");
        Arc::new(Self {
            pool: pool.clone(),
            transient,
            calls: AtomicUsize::new(0),
            batch_sizes: Mutex::new(Vec::new()),
        })
    }
}

impl MessageHandler for Notes {
    async fn handle(&self, messages: &[IncomingMessage]) -> anyhow::Result<Vec<Verdict>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        self.batch_sizes.lock().expect("batch sizes").push(messages.len());
        let mut connection = migrations::Pooled::acquire(&self.pool).await?;
        let mut transaction = connection.begin().await?;
        if call < self.transient {
            sqlx::query("DO $$ BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END $$")
                .execute(&mut *transaction)
                .await
                .context("storing notes")?;
        }
        for message in messages {
            let body = String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default()).into_owned();
            sqlx::query("INSERT INTO notes (id, body) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING")
                .bind(&message.key)
                .bind(body)
                .execute(&mut *transaction)
                .await
                .context("storing a note")?;
        }
        transaction.commit().await?;
        Ok(vec![Ok(Handled::Applied); messages.len()])
    }
}

async fn produce(settings: &messaging::KafkaSettings, topic: &str, messages: &[(String, String)]) {
    let producer: FutureProducer = settings.producer_config().create().expect("a producer");
    for (key, body) in messages {
        producer.send(FutureRecord::to(topic).key(key).payload(body), Duration::from_secs(10)).await.expect("produced");
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[tokio::test]
async fn a_message_the_database_refuses_for_good_is_parked_alone_and_the_rest_of_its_batch_applied() {
    let pool = database().await;
    let settings = kafka(None, &[]);
    let topic = topic("notes");
    messaging::topics::ensure_topics(&settings, &[&topic, &Topics::dead_letter(&topic)]).await.expect("topics");
    let messages: Vec<(String, String)> = (0..10)
        .map(|i| {
            let body =
                if i == 4 { r#"{"i": 4, "correlationId": "a\u0000b"}"#.to_owned() } else { format!(r#"{{"i": {i}}}"#) };
            (format!("n-{i}"), body)
        })
        .collect();
    produce(&settings, &topic, &messages).await;

    let handler = Notes::new(&pool, 0).await;
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn({
        let (settings, pool, topic, handler, shutdown) =
            (settings.clone(), pool.clone(), topic.clone(), handler.clone(), shutdown.clone());
        async move {
            run_consumer(&settings, parking(pool, &settings), "test-notes", &[&topic], handler, unwatched(), shutdown)
                .await
        }
    });
    let done = eventually(Duration::from_secs(30), async || {
        count(&pool, "SELECT count(*) FROM notes").await == 9
            && count(&pool, "SELECT count(*) FROM dead_letters").await == 1
    })
    .await;
    let parked = dead_letters(&pool).await;
    assert!(
        done,
        "nine notes stored and one dead letter; dead letters: {parked:?}, batches: {:?}",
        handler.batch_sizes.lock().expect("batch sizes")
    );
    let (source, origin, parked_topic, reason, payload_null) = &parked[0];
    assert_eq!((source.as_str(), parked_topic.as_str(), *payload_null), ("consumer", topic.as_str(), false));
    assert_eq!(origin, &format!("{topic}/0/4"), "the origin is the refused message's");
    assert!(reason.contains("22P05"), "the reason names the SQLSTATE: {reason}");
    let key: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT message_key FROM dead_letters").fetch_one(&pool).await.expect("key");
    assert_eq!(key.as_deref(), Some(&b"n-4"[..]));
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT id FROM notes ORDER BY id").fetch_all(&pool).await.expect("notes");
    assert!(!stored.contains(&"n-4".to_owned()), "{stored:?}");

    let copies = read_topic(&settings, &Topics::dead_letter(&topic), 1, Duration::from_secs(15)).await;
    assert_eq!(copies.len(), 1, "one copy on the dead-letter topic");
    assert_eq!(copies[0].key.as_deref(), Some("n-4"));
    assert_eq!(copies[0].payload, messages[4].1.as_bytes());
    let header = |name: &str| copies[0].headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert!(header("dlq-reason").is_some_and(|r| r.contains("22P05")), "{:?}", copies[0].headers);
    assert_eq!(header("dlq-origin"), Some(format!("{topic}/0/4")));

    shutdown.cancel();
    consumer.await.expect("joined").expect("the consumer ran");
    let batches = handler.batch_sizes.lock().expect("batch sizes").clone();
    assert!(batches.len() >= 2, "the failing batch was handled again in parts: {batches:?}");
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_it_passes_and_never_parked() {
    let pool = database().await;
    let settings = kafka(None, &[]);
    let topic = topic("transient");
    messaging::topics::ensure_topics(&settings, &[&topic, &Topics::dead_letter(&topic)]).await.expect("topics");
    let messages: Vec<(String, String)> = (0..5).map(|i| (format!("n-{i}"), format!(r#"{{"i": {i}}}"#))).collect();
    produce(&settings, &topic, &messages).await;

    let handler = Notes::new(&pool, 4).await;
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn({
        let (settings, pool, topic, handler, shutdown) =
            (settings.clone(), pool.clone(), topic.clone(), handler.clone(), shutdown.clone());
        async move {
            run_consumer(
                &settings,
                parking(pool, &settings),
                "test-transient",
                &[&topic],
                handler,
                unwatched(),
                shutdown,
            )
            .await
        }
    });
    let applied =
        eventually(Duration::from_secs(30), async || count(&pool, "SELECT count(*) FROM notes").await == 5).await;
    shutdown.cancel();
    consumer.await.expect("joined").expect("the consumer ran");
    assert!(applied, "every message applied after the transient failures");
    assert!(handler.calls.load(Ordering::SeqCst) > 4, "the failures were retried");
    assert_eq!(dead_letters(&pool).await, vec![], "nothing parked");
    assert!(
        read_topic(&settings, &Topics::dead_letter(&topic), 1, Duration::from_secs(2)).await.is_empty(),
        "nothing on the dead-letter topic"
    );
}

/// The broker restarts empty: the consumer's group and topic are gone. When the
/// consumer rejoins a new group while its topic is missing, the group gives it nothing,
/// and librdkafka may keep that empty assignment once the topic comes back: then it
/// must say it is stuck (what the service's readiness shows) while it waits, its
/// client be replaced, and it say it works again. When librdkafka notices the topic
/// by itself, it rejoins and consumes without being stuck (which of the two happens
/// depends on timing; both are checked). Either way the new message is applied once,
/// from the new log's start: no stale position of the old group skips it.
#[tokio::test]
async fn after_an_empty_broker_restart_a_consumer_consumes_from_the_new_start_and_says_so_while_stuck() {
    let mut broker = DevBroker::start().await.expect("a private development broker");
    let pool = database().await;
    let settings = kafka(Some(&broker.address), &[]);
    let topic = topic("starved");
    let needed = [topic.as_str(), &Topics::dead_letter(&topic)].map(str::to_owned);
    let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
    messaging::topics::ensure_topics(&settings, &needed).await.expect("topics");
    produce(&settings, &topic, &[("n-0".to_owned(), r#"{"i": 0}"#.to_owned())]).await;

    let handler = Notes::new(&pool, 0).await;
    let reports: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let stuck: messaging::StuckReport = Arc::new({
        let reports = reports.clone();
        move |report| reports.lock().expect("reports").push(report)
    });
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn({
        let (settings, pool, topic, handler, shutdown) =
            (settings.clone(), pool.clone(), topic.clone(), handler.clone(), shutdown.clone());
        async move {
            run_consumer(&settings, parking(pool, &settings), "test-starved", &[&topic], handler, stuck, shutdown).await
        }
    });
    let first =
        eventually(Duration::from_secs(30), async || count(&pool, "SELECT count(*) FROM notes").await == 1).await;
    assert!(first, "the first message applied");

    broker.start_empty().await.expect("restarting the broker empty");
    let restarted = tokio::time::Instant::now();
    // Long enough for the consumer to notice and rejoin a group on the new broker.
    tokio::time::sleep(Duration::from_secs(15)).await;
    messaging::topics::ensure_topics(&settings, &needed).await.expect("topics again");
    produce(&settings, &topic, &[("n-1".to_owned(), r#"{"i": 1}"#.to_owned())]).await;
    let applied =
        eventually(Duration::from_secs(90), async || count(&pool, "SELECT count(*) FROM notes").await == 2).await;
    let took = restarted.elapsed();
    let stuck_seen = reports.lock().expect("reports").iter().flatten().any(|reason| reason.contains(&topic));
    // The replaced client's watchdog says it works again at its first probe.
    let recovered = !stuck_seen
        || eventually(Duration::from_secs(15), async || reports.lock().expect("reports").last() == Some(&None)).await;
    shutdown.cancel();
    consumer.await.expect("joined").expect("the consumer ran");
    let reports = reports.lock().expect("reports").clone();
    let said: Vec<&String> = reports.iter().flatten().collect();
    assert!(applied, "the message after the restart applied {took:?} after it; reports: {said:?}");
    if stuck_seen {
        assert!(said[0].contains("holds no partition") && said[0].contains("test-starved"), "{}", said[0]);
        assert!(recovered, "then it said it works again: {reports:?}");
    } else {
        assert!(said.is_empty(), "no stuck report without its topic named: {said:?}");
        eprintln!("the consumer rejoined by itself: it was never stuck");
    }
    assert_eq!(dead_letters(&pool).await, vec![], "nothing parked");
    eprintln!("applied {took:?} after the restart; reports: {reports:?}");
}
