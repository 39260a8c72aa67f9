//! The commit-ordered feed against a real PostgreSQL.

use std::time::Duration;

use eventstore::{CommitNotifier, Feed, FeedPosition};
use sqlx::PgPool;

mod support;
use support::append;

async fn pool() -> PgPool {
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, "oms", 4, &migrations::OMS).await.expect("migrated")
}

async fn insert(pool: &PgPool, aggregate_id: &str, sequence: i64, transaction_id: u64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, transaction_id)
         VALUES ('Order', $1, $2, 'OrderCanceled', '1.0', '{}', '{}', $3::text::xid8)",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .bind(transaction_id.to_string())
    .execute(pool)
    .await
    .expect("insert");
}

#[tokio::test]
async fn the_feed_reads_in_transaction_order_not_in_the_text_order_of_the_ids() {
    let pool = pool().await;
    // As text these sort 10, 100, 9, 99: a feed ordered by text would read them wrong
    // and, paging with a limit, skip some for good.
    for transaction_id in [100u64, 9, 99, 10] {
        insert(&pool, &format!("o-{transaction_id}"), 1, transaction_id).await;
    }
    let feed = Feed::new(pool.clone(), "test");
    let mut position = FeedPosition::default();
    let mut read = Vec::new();
    loop {
        let page = feed.read_after(position, 2).await.expect("read");
        let Some(last) = page.last() else { break };
        position = last.position;
        read.extend(page.iter().map(|e| e.position.transaction_id));
    }
    assert_eq!(read, [9, 10, 99, 100], "every event once, in transaction order");
}

#[tokio::test]
async fn a_reader_resumes_after_its_saved_position() {
    let pool = pool().await;
    for (sequence, transaction_id) in [(1, 5u64), (2, 6), (3, 7)] {
        insert(&pool, "o-1", sequence, transaction_id).await;
    }
    let feed = Feed::new(pool.clone(), "relay");
    assert_eq!(feed.checkpoint().await.expect("checkpoint"), FeedPosition::default());
    let first = feed.read_after(FeedPosition::default(), 2).await.expect("read");
    feed.save_checkpoint(first[1].position).await.expect("saved");
    let again = Feed::new(pool.clone(), "relay");
    let rest = again.read_after(again.checkpoint().await.expect("checkpoint"), 10).await.expect("read");
    assert_eq!(rest.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
    again.reset().await.expect("reset");
    assert_eq!(again.checkpoint().await.expect("checkpoint"), FeedPosition::default());
}

#[tokio::test]
async fn events_committed_behind_an_older_open_transaction_are_held_back_until_it_ends() {
    let pool = pool().await;
    let feed = Feed::new(pool.clone(), "relay");
    // The older transaction takes its id first and commits last.
    let mut connection = migrations::Pooled::acquire(&pool).await.expect("a connection");
    let mut older = connection.begin().await.expect("begin");
    append(&mut *older, "o-older").await;
    append(&pool, "o-newer").await;

    let page = feed.read_page(FeedPosition::default(), 10).await.expect("read");
    assert!(page.events.is_empty(), "nothing passes the older open transaction: {:?}", page.events);
    assert!(page.held_back, "the newer committed event is reported as held back");

    older.commit().await.expect("commit");
    // Other tests' transactions anywhere in the cluster may still hold both back a while
    // (up to 30 s here, returning as soon as both pass).
    let mut read = Vec::new();
    for _ in 0..600 {
        read = feed.read_page(FeedPosition::default(), 10).await.expect("read").events;
        if read.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        read.iter().map(|e| e.aggregate_id.as_str()).collect::<Vec<_>>(),
        ["o-older", "o-newer"],
        "both, in transaction order"
    );
}

/// Follows `feed` in a task, sending the ids of the aggregates it reads.
fn follow(feed: Feed, shutdown: &tokio_util::sync::CancellationToken) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (read, received) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        feed.follow(100, &shutdown, |events| {
            let read = read.clone();
            async move {
                for event in events {
                    let _ = read.send(event.aggregate_id);
                }
                Ok(())
            }
        })
        .await;
    });
    received
}

async fn next_within(received: &mut tokio::sync::mpsc::UnboundedReceiver<String>, limit: Duration) -> Option<String> {
    tokio::time::timeout(limit, received.recv()).await.ok().flatten()
}

const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_follower_reads_at_once_when_a_commit_rings_in_its_process_or_in_another() {
    let pool = pool().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let here = CommitNotifier::new(pool.clone(), "oms");
    // Polling once an hour: only the notifiers can make it read in time.
    let mut received = follow(Feed::new(pool.clone(), "relay").woken_by(here.clone()).polling_every(NEVER), &shutdown);
    tokio::time::sleep(Duration::from_millis(500)).await; // it has read the empty feed and waits

    append(&pool, "o-here").await;
    here.committed();
    assert_eq!(
        next_within(&mut received, Duration::from_secs(5)).await.as_deref(),
        Some("o-here"),
        "woken in its own process"
    );

    // Another instance of the service: its own notifier, on the same schema.
    let elsewhere = CommitNotifier::new(pool.clone(), "oms");
    append(&pool, "o-elsewhere").await;
    elsewhere.committed();
    assert_eq!(
        next_within(&mut received, Duration::from_secs(5)).await.as_deref(),
        Some("o-elsewhere"),
        "woken through PostgreSQL"
    );

    shutdown.cancel();
}

#[tokio::test]
async fn commits_are_announced_to_other_processes_only_while_a_follower_here_does_not_lead() {
    let pool = pool().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut announced = sqlx::postgres::PgListener::connect_with(&pool).await.expect("listener");
    announced.listen(&CommitNotifier::channel("oms")).await.expect("listen");
    let mut announced_within = async |limit| tokio::time::timeout(limit, announced.recv()).await.is_ok();

    // This process leads its only feed: nobody elsewhere reads it.
    let here = CommitNotifier::new(pool.clone(), "oms");
    let mut received = follow(Feed::new(pool.clone(), "relay").woken_by(here.clone()).polling_every(NEVER), &shutdown);
    tokio::time::sleep(Duration::from_millis(500)).await; // it leads and waits
    append(&pool, "o-here").await;
    here.committed();
    assert_eq!(next_within(&mut received, Duration::from_secs(5)).await.as_deref(), Some("o-here"));
    assert!(!announced_within(Duration::from_millis(500)).await, "no NOTIFY while every follower here leads");

    // Another instance, whose follower stands by: the leader is elsewhere (here).
    let elsewhere = CommitNotifier::new(pool.clone(), "oms");
    let _standby = follow(Feed::new(pool.clone(), "relay").woken_by(elsewhere.clone()).polling_every(NEVER), &shutdown);
    tokio::time::sleep(Duration::from_millis(300)).await; // it found the lead taken
    append(&pool, "o-elsewhere").await;
    elsewhere.committed();
    assert!(announced_within(Duration::from_secs(5)).await, "announced while a follower there stands by");
    assert_eq!(
        next_within(&mut received, Duration::from_secs(5)).await.as_deref(),
        Some("o-elsewhere"),
        "the leader here woken through PostgreSQL"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_follower_reads_events_held_back_by_an_older_transaction_soon_after_it_ends() {
    let pool = pool().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut connection = migrations::Pooled::acquire(&pool).await.expect("a connection");
    let mut older = connection.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *older).await.expect("the older transaction takes its id");
    append(&pool, "o-held").await;
    // Nothing rings and it polls once an hour: only noticing that events are held back
    // makes it look again.
    let silent = CommitNotifier::new(pool.clone(), "oms");
    let mut received = follow(Feed::new(pool.clone(), "relay").woken_by(silent).polling_every(NEVER), &shutdown);
    assert_eq!(
        next_within(&mut received, Duration::from_millis(300)).await,
        None,
        "held back while the older transaction runs"
    );
    older.commit().await.expect("commit");
    assert_eq!(
        next_within(&mut received, Duration::from_secs(5)).await.as_deref(),
        Some("o-held"),
        "read soon after it ended"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn appending_events_notifies_nobody_inside_the_writing_transaction() {
    // A NOTIFY in the writing transaction would hold PostgreSQL's cluster-wide
    // notification lock through the commit's WAL flush, serializing every writer.
    let pool = pool().await;
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal",
    )
    .fetch_all(&pool)
    .await
    .expect("triggers");
    assert_eq!(triggers, Vec::<String>::new(), "no trigger on events");
}

async fn next(started: &mut tokio::sync::mpsc::UnboundedReceiver<Started>) -> Started {
    tokio::time::timeout(Duration::from_secs(5), started.recv()).await.expect("a batch is handed over").expect("open")
}

/// A batch a pipelined follower handed over, waiting for the test to finish it.
struct Started {
    aggregates: Vec<String>,
    finish: tokio::sync::oneshot::Sender<Result<(), String>>,
}

#[tokio::test]
async fn a_pipelined_follower_saves_positions_in_feed_order_and_restarts_after_a_failed_batch() {
    let pool = pool().await;
    for i in 0..6 {
        append(&pool, &format!("o-{i}")).await;
    }
    // Events are held back while an older transaction runs anywhere on the server
    // (transaction ids are cluster-wide, so other tests' count): once the feed has seen
    // all six, it always will, and batches are cut by size alone.
    let probe = Feed::new(pool.clone(), "pipelined");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while probe.read_after(probe.checkpoint().await.expect("checkpoint"), 10).await.expect("read").len() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "the feed shows the six events within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<Started>();
    let follower = tokio::spawn({
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        async move {
            Feed::new(pool, "pipelined")
                .follow_pipelined(2, 3, &shutdown, |events| {
                    let (finish, finished) = tokio::sync::oneshot::channel();
                    let _ = started_tx
                        .send(Started { aggregates: events.into_iter().map(|e| e.aggregate_id).collect(), finish });
                    async move { finished.await.unwrap_or(Ok(())).map_err(Into::into) }
                })
                .await;
        }
    });
    let feed = Feed::new(pool.clone(), "pipelined");
    let saved =
        || async { feed.read_after(feed.checkpoint().await.expect("checkpoint"), 10).await.expect("read").len() };

    // Three batches at once, each handed over before the one before it is done.
    let (first, second, third) = (next(&mut started).await, next(&mut started).await, next(&mut started).await);
    assert_eq!(
        [first.aggregates.clone(), second.aggregates.clone(), third.aggregates.clone()],
        [["o-0", "o-1"], ["o-2", "o-3"], ["o-4", "o-5"]]
    );
    // The second is done first: nothing can be saved while the first is not.
    second.finish.send(Ok(())).expect("finish");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(saved().await, 6, "no position saved past an unfinished batch");
    // The first fails: everything after the saved position is handed over again.
    first.finish.send(Err("the broker refused".into())).expect("finish");
    drop(third);
    let again = next(&mut started).await;
    assert_eq!(again.aggregates, ["o-0", "o-1"], "handed over again after the failure");
    again.finish.send(Ok(())).expect("finish");
    let (fourth, fifth) = (next(&mut started).await, next(&mut started).await);
    assert_eq!([fourth.aggregates.clone(), fifth.aggregates.clone()], [["o-2", "o-3"], ["o-4", "o-5"]]);
    fourth.finish.send(Ok(())).expect("finish");
    fifth.finish.send(Ok(())).expect("finish");
    // Up to 30 s, returning as soon as it is saved: the whole suite shares two cores.
    for _ in 0..1_500 {
        if saved().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(saved().await, 0, "everything done is saved");
    shutdown.cancel();
    follower.await.expect("the follower stops");
}

#[tokio::test]
async fn a_follower_whose_connection_dies_leads_again_and_resumes_after_its_saved_position() {
    let pool = pool().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let notifier = CommitNotifier::new(pool.clone(), "oms");
    let mut received = follow(
        Feed::new(pool.clone(), "relay").woken_by(notifier.clone()).polling_every(Duration::from_millis(100)),
        &shutdown,
    );
    append(&pool, "o-before").await;
    notifier.committed();
    assert_eq!(next_within(&mut received, Duration::from_secs(5)).await.as_deref(), Some("o-before"));
    tokio::time::sleep(Duration::from_millis(200)).await; // its position is saved

    // The session holding the feed's lock (the follower's connection) is killed.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pool)
    .await
    .expect("terminate");
    assert_eq!(killed, 1, "one session held the lock");
    append(&pool, "o-after").await;
    notifier.committed();
    assert_eq!(
        next_within(&mut received, Duration::from_secs(10)).await.as_deref(),
        Some("o-after"),
        "it leads again and reads on"
    );
    assert_eq!(next_within(&mut received, Duration::from_millis(500)).await, None, "nothing read twice");
    let leaders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pool)
    .await
    .expect("locks");
    assert_eq!(leaders, 1, "it holds the feed's lock again, so no other instance publishes beside it");
    shutdown.cancel();
}

#[tokio::test]
async fn a_lingering_follower_reads_a_stream_of_commits_in_one_batch_and_a_lone_commit_at_once() {
    let pool = pool().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let notifier = CommitNotifier::new(pool.clone(), "oms");
    let (read, mut batches) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    let feed = Feed::new(pool.clone(), "relay")
        .woken_by(notifier.clone())
        .polling_every(NEVER)
        .lingering(Duration::from_secs(1));
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            feed.follow(100, &shutdown, |events| {
                let _ = read.send(events.into_iter().map(|e| e.aggregate_id).collect());
                async { Ok(()) }
            })
            .await;
        }
    });
    // Longer than the linger since its first read of the empty feed: a quiet spell.
    tokio::time::sleep(Duration::from_millis(1300)).await;

    append(&pool, "o-lone").await;
    notifier.committed();
    let lone = tokio::time::timeout(Duration::from_millis(700), batches.recv())
        .await
        .expect("read well within the linger")
        .expect("open");
    assert_eq!(lone, ["o-lone"]);
    // Its batch done, it waits for the next commit.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Commits soon after a read wait for the rest of the linger, and come together.
    for id in ["o-1", "o-2", "o-3"] {
        append(&pool, id).await;
        notifier.committed();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let together = tokio::time::timeout(Duration::from_secs(5), batches.recv())
        .await
        .expect("read after the linger")
        .expect("open");
    assert_eq!(together, ["o-1", "o-2", "o-3"], "one batch, not one per commit");
    shutdown.cancel();
}

#[tokio::test]
async fn a_lingering_follower_stops_at_once_when_shutdown_comes_during_its_linger() {
    let pool = pool().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let notifier = CommitNotifier::new(pool.clone(), "oms");
    let feed = Feed::new(pool.clone(), "relay")
        .woken_by(notifier.clone())
        .polling_every(NEVER)
        .lingering(Duration::from_secs(30));
    let follower = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { feed.follow(100, &shutdown, |_| async { Ok(()) }).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await; // it has read the empty feed
    // A commit right after that read waits for the rest of the linger...
    append(&pool, "o-lingering").await;
    notifier.committed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...which must not hold up shutdown.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("stops well within the linger")
        .expect("the follower task");
}

#[tokio::test]
async fn a_follower_saves_its_position_at_once_after_a_quiet_spell_then_once_per_interval_and_at_shutdown() {
    let pool = pool().await;
    // Every save of a position counted, whoever writes it.
    sqlx::raw_sql(
        "CREATE TABLE checkpoint_saves (saved bigint NOT NULL);
         INSERT INTO checkpoint_saves VALUES (0);
         CREATE FUNCTION count_checkpoint_save() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN UPDATE checkpoint_saves SET saved = saved + 1; RETURN NEW; END $$;
         CREATE TRIGGER counted AFTER INSERT OR UPDATE ON feed_checkpoints
           FOR EACH ROW EXECUTE FUNCTION count_checkpoint_save();",
    )
    .execute(&pool)
    .await
    .expect("a save counter");
    let saves = async || -> i64 {
        sqlx::query_scalar("SELECT saved FROM checkpoint_saves").fetch_one(&pool).await.expect("saves")
    };
    let last_position = async || {
        let events = Feed::new(pool.clone(), "reader").read_after(FeedPosition::default(), 1000).await.expect("read");
        events.last().expect("events").position
    };
    let saved_within = async |limit: Duration, position: FeedPosition| {
        support::saved_within(&pool, "relay", limit, |p| p == position).await
    };

    let shutdown = tokio_util::sync::CancellationToken::new();
    let notifier = CommitNotifier::new(pool.clone(), "oms");
    // One event per batch: every commit is a batch of its own.
    let feed = Feed::new(pool.clone(), "relay").woken_by(notifier.clone()).polling_every(NEVER);
    let (read, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    let follower = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            feed.follow(1, &shutdown, |events| {
                for event in events {
                    let _ = read.send(event.aggregate_id);
                }
                async { Ok(()) }
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await; // it leads and has read the empty feed

    append(&pool, "o-lone").await;
    notifier.committed();
    assert_eq!(next_within(&mut received, Duration::from_secs(5)).await.as_deref(), Some("o-lone"));
    assert!(saved_within(Duration::from_millis(50), last_position().await).await, "after a quiet spell, saved at once");
    assert_eq!(saves().await, 1);

    // A stream of commits right after that save: twenty batches, saved when the
    // interval is up, once or twice, and always the latest.
    for n in 0..20 {
        append(&pool, &format!("o-{n}")).await;
        notifier.committed();
        assert_eq!(next_within(&mut received, Duration::from_secs(5)).await, Some(format!("o-{n}")));
    }
    assert!(saved_within(Duration::from_secs(2), last_position().await).await, "the stream's last batch saved");
    let after_stream = saves().await;
    assert!((2..=4).contains(&after_stream), "a save per interval, not per batch: {after_stream} saves");

    // Shutdown right after two batches, the second within the interval of the first
    // one's save: it saves before it stops, not one interval later.
    for id in ["o-last-1", "o-last-2"] {
        append(&pool, id).await;
        notifier.committed();
        assert_eq!(next_within(&mut received, Duration::from_secs(5)).await.as_deref(), Some(id));
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), follower).await.expect("it stops").expect("the follower task");
    let saved = Feed::new(pool.clone(), "relay").checkpoint().await.expect("checkpoint");
    assert_eq!(saved, last_position().await, "the last batch saved at shutdown");
}
