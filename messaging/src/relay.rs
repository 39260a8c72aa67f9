//! The outbox relay: publishes committed events, read from the commit-ordered feed, to
//! Kafka; advances its checkpoint only after the broker acknowledged every message of
//! a batch. A crash anywhere means some messages are published again (at least once,
//! in per-aggregate order), never that one is skipped.

use std::time::Duration;

use eventstore::{Feed, FeedEvent, FeedPosition};
use futures::future::try_join_all;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::OutgoingMessage;

/// Which messages a stored event becomes (none, one, or several).
pub trait Route: Send + Sync + 'static {
    /// The messages for `event`; an event of no interest outside maps to none.
    fn route(&self, event: &FeedEvent) -> Vec<OutgoingMessage>;
}

/// Publishes one schema's events to Kafka.
pub struct Relay<R> {
    feed: Feed,
    pool: PgPool,
    producer: FutureProducer,
    route: R,
    batch_size: i64,
    poll: Duration,
}

impl<R: Route> Relay<R> {
    /// A relay reading the feed of `pool`'s schema under the checkpoint `name`.
    pub fn new(pool: PgPool, name: &str, producer: FutureProducer, route: R) -> Self {
        Self { feed: Feed::new(pool.clone(), name), pool, producer, route, batch_size: 500, poll: Duration::from_millis(100) }
    }

    /// Runs until `shutdown` is cancelled, then flushes the producer. Only one relay per
    /// feed publishes at a time (a PostgreSQL advisory lock); others stand by.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(_leadership) = self.lead(&shutdown).await else { return };
        tracing::info!(relay = self.feed.name(), "relay publishing");
        let mut position = loop {
            match self.feed.checkpoint().await {
                Ok(position) => break position,
                Err(error) => {
                    tracing::warn!(%error, "relay cannot read its checkpoint; retrying");
                    if sleep_or_cancel(Duration::from_secs(1), &shutdown).await {
                        return;
                    }
                }
            }
        };
        let mut waiter = self.feed.waiter(self.poll).await;
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            match self.publish_batch(position).await {
                Ok(Some((next, full))) => {
                    position = next;
                    failures = 0;
                    if full {
                        continue;
                    }
                }
                Ok(None) => failures = 0,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "relay could not publish a batch; retrying from the checkpoint");
                    let backoff = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    if sleep_or_cancel(backoff, &shutdown).await {
                        break;
                    }
                    continue;
                }
            }
            tokio::select! {
                () = waiter.wait() => {}
                () = shutdown.cancelled() => {}
            }
        }
        let _ = self.producer.flush(Timeout::After(Duration::from_secs(10)));
        tracing::info!(relay = self.feed.name(), "relay stopped");
    }

    /// Publishes the next batch; returns the new position and whether the batch was full.
    async fn publish_batch(&self, position: FeedPosition) -> anyhow::Result<Option<(FeedPosition, bool)>> {
        let events = self.feed.read_after(position, self.batch_size).await?;
        let Some(last) = events.last().map(|e| e.position) else { return Ok(None) };
        let messages: Vec<(OutgoingMessage, Vec<u8>)> = events
            .iter()
            .flat_map(|event| self.route.route(event))
            .map(|message| {
                let body = serde_json::to_vec(&message.envelope)?;
                Ok::<_, serde_json::Error>((message, body))
            })
            .collect::<Result<_, _>>()?;
        // Queued in feed order; the idempotent producer keeps that order per partition.
        let deliveries = messages.iter().map(|(message, body)| {
            let record = FutureRecord::to(&message.topic).key(&message.key).payload(body).headers(message.envelope.headers());
            async move {
                self.producer
                    .send(record, Timeout::After(Duration::from_secs(30)))
                    .await
                    .map_err(|(error, _)| anyhow::anyhow!("publishing to {}: {error}", message.topic))
            }
        });
        try_join_all(deliveries).await?;
        self.feed.save_checkpoint(last).await?;
        tracing::debug!(events = events.len(), messages = messages.len(), "relay published a batch");
        Ok(Some((last, events.len() as i64 == self.batch_size)))
    }

    /// Waits until this process holds the relay's advisory lock (held by the returned
    /// connection for as long as it lives), or shutdown.
    async fn lead(&self, shutdown: &CancellationToken) -> Option<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        let key = format!("relay:{}", self.feed.name());
        let mut waiting_logged = false;
        loop {
            let attempt = async {
                let mut connection = self.pool.acquire().await?;
                // Advisory locks are database-wide: the schema is part of the key, so the
                // relays of services sharing a database do not exclude each other.
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext(current_schema() || ':' || $1))")
                    .bind(&key).fetch_one(&mut *connection).await?;
                Ok::<_, sqlx::Error>(locked.then_some(connection))
            };
            match attempt.await {
                Ok(Some(connection)) => return Some(connection),
                Ok(None) if !waiting_logged => {
                    tracing::info!(relay = self.feed.name(), "another instance is relaying; standing by");
                    waiting_logged = true;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "relay cannot take its lock; retrying"),
            }
            if sleep_or_cancel(Duration::from_secs(1), shutdown).await {
                return None;
            }
        }
    }
}

/// Sleeps for `duration`; true when shutdown came first.
pub(crate) async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = shutdown.cancelled() => true,
    }
}
