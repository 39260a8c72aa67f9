//! The commit-ordered feed against a real PostgreSQL.

use eventstore::{Feed, FeedPosition};
use sqlx::PgPool;

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
