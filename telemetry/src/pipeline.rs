//! Metrics of the event pipeline behind the HTTP side: how far each feed reader (the
//! outbox relay, the feed-fed read models) is behind the event store, what the relay
//! published, how far consumers are behind their partitions, what became of consumed
//! messages, and what the saga decided; and the database pool that the pipeline and
//! the requests share.

use crate::names;

/// A reader of the commit-ordered event feed, by the gauge its lag is reported on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedReader {
    /// The outbox relay: its lag is [`names::RELAY_LAG`].
    Relay,
    /// A read model caught up from the feed: its lag is [`names::PROJECTION_LAG`].
    Projection,
}

impl FeedReader {
    /// The gauge this reader's lag is reported on.
    pub fn lag_gauge(self) -> &'static str {
        match self {
            Self::Relay => names::RELAY_LAG,
            Self::Projection => names::PROJECTION_LAG,
        }
    }
}

/// Reports that `events` committed events lie after the position of `reader`, reading
/// the feed under the checkpoint name `feed`.
pub fn record_feed_lag(reader: FeedReader, feed: &str, events: u64) {
    metrics::gauge!(reader.lag_gauge(), "feed" => feed.to_owned()).set(events as f64);
}

/// Reports the age of the oldest committed event after the relay `feed`'s position
/// (`None`: none waits), as the relay's leader measures it beside its lag.
pub fn record_oldest_unpublished(feed: &str, age: Option<std::time::Duration>) {
    metrics::gauge!(names::RELAY_OLDEST_UNPUBLISHED, "feed" => feed.to_owned())
        .set(age.map_or(0.0, |age| age.as_secs_f64()));
}

/// Reports whether the supervised background task `task` is down (ended or
/// panicked, and waiting to be restarted) or stuck (running, but unable to work).
pub fn record_task_stalled(task: &str, stalled: bool) {
    metrics::gauge!(names::PIPELINE_STALLED, "task" => task.to_owned()).set(if stalled { 1.0 } else { 0.0 });
}

/// Counts `messages` the relay published to `topic` (acknowledged by the broker).
pub fn record_published(topic: &str, messages: u64) {
    metrics::counter!(names::RELAY_PUBLISHED, "topic" => topic.to_owned()).increment(messages);
}

/// Counts one message for `topic` the relay parked because it can never be published.
pub fn record_relay_parked(topic: &str) {
    metrics::counter!(names::RELAY_PARKED, "topic" => topic.to_owned()).increment(1);
}

/// Records how long after the start of its writing transaction an event of `feed`
/// was queued for the broker.
pub fn record_relay_delay(feed: &str, delay: std::time::Duration) {
    metrics::histogram!(names::RELAY_DELAY, "feed" => feed.to_owned()).record(delay.as_secs_f64());
}

/// Records how long the broker took to acknowledge a batch the relay of `feed` queued.
pub fn record_relay_publish_duration(feed: &str, duration: std::time::Duration) {
    metrics::histogram!(names::RELAY_PUBLISH_DURATION, "feed" => feed.to_owned()).record(duration.as_secs_f64());
}

/// Records the age of a message of `topic` when consumer group `group` received it.
pub fn record_message_age(group: &str, topic: &str, age: std::time::Duration) {
    metrics::histogram!(names::CONSUMER_MESSAGE_AGE, "group" => group.to_owned(), "topic" => topic.to_owned())
        .record(age.as_secs_f64());
}

/// Reports that `messages` lie after consumer group `group`'s committed position in
/// `partition` of `topic`.
pub fn record_consumer_lag(group: &str, topic: &str, partition: i32, messages: u64) {
    metrics::gauge!(names::CONSUMER_LAG, "group" => group.to_owned(), "topic" => topic.to_owned(), "partition" => partition.to_string())
        .set(messages as f64);
}

/// Reports that `count` partitions of `topic` are assigned to this instance as member
/// of consumer group `group`.
pub fn record_assigned_partitions(group: &str, topic: &str, count: usize) {
    metrics::gauge!(names::CONSUMER_ASSIGNED_PARTITIONS, "group" => group.to_owned(), "topic" => topic.to_owned())
        .set(count as f64);
}

/// What became of a consumed message; the `result` label of [`names::MESSAGES_CONSUMED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumeResult {
    /// Its effect is durable (or already was).
    Applied,
    /// It is of no interest to the consumer.
    Ignored,
    /// It can never be handled and went to the dead-letter topic.
    DeadLettered,
}

impl ConsumeResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ignored => "ignored",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// Counts `messages` of `topic` consumer group `group` finished with `result`.
pub fn record_consumed(group: &str, topic: &str, result: ConsumeResult, messages: u64) {
    metrics::counter!(names::MESSAGES_CONSUMED, "group" => group.to_owned(), "topic" => topic.to_owned(), "result" => result.as_str())
        .increment(messages);
}

/// Counts one message of `topic` that consumer group `group` sent to the dead-letter
/// topic.
pub fn record_dead_letter(group: &str, topic: &str) {
    metrics::counter!(names::DEAD_LETTERS, "group" => group.to_owned(), "topic" => topic.to_owned()).increment(1);
}

/// A reservation outcome the saga committed; the labels of [`names::SAGA_OUTCOMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaOutcome {
    /// Units are held for the item (also when it already held exactly what it asks).
    Reserved,
    /// The item shrank: it holds fewer units, the difference is available again.
    Reduced,
    /// The item cannot be served, for the reason given (its wire name, e.g.
    /// `INSUFFICIENT_STOCK`).
    Rejected(&'static str),
    /// Everything held for the item was released (canceled item or order).
    Released,
    /// What the item held left with its shipped order.
    Shipped,
}

impl SagaOutcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Reduced => "reduced",
            Self::Rejected(_) => "rejected",
            Self::Released => "released",
            Self::Shipped => "shipped",
        }
    }
}

/// Counts one outcome the saga committed. Rejections carry a `reason` label; the
/// other outcomes have none.
pub fn record_saga_outcome(outcome: SagaOutcome) {
    match outcome {
        SagaOutcome::Rejected(reason) => {
            metrics::counter!(names::SAGA_OUTCOMES, "outcome" => outcome.as_str(), "reason" => reason).increment(1)
        }
        _ => metrics::counter!(names::SAGA_OUTCOMES, "outcome" => outcome.as_str()).increment(1),
    }
}

/// Counts order events republished by the OMS to ask again for stuck items.
pub fn record_rerequests(messages: u64) {
    metrics::counter!(names::REREQUESTS).increment(messages);
}

/// Counts orders canceled for not being paid within the payment deadline.
pub fn record_payment_timeouts(orders: u64) {
    metrics::counter!(names::PAYMENT_TIMEOUTS).increment(orders);
}

/// Sets how long the oldest pending order has waited (zero when none is pending).
pub fn record_pending_oldest_age(age: std::time::Duration) {
    metrics::gauge!(names::PENDING_OLDEST_AGE).set(age.as_secs_f64());
}

/// Counts item outcomes the saga announced again for a re-request.
pub fn record_reannounced_outcomes(messages: u64) {
    metrics::counter!(names::REANNOUNCED_OUTCOMES).increment(messages);
}

/// Reports the connections of the database pool of `schema`: `in_use`, `idle`, and the
/// most it opens.
pub fn record_pool(schema: &str, in_use: u32, idle: u32, max: u32) {
    let gauge = |state: &'static str| metrics::gauge!(names::DB_POOL_CONNECTIONS, "schema" => schema.to_owned(), "state" => state);
    gauge("in_use").set(f64::from(in_use));
    gauge("idle").set(f64::from(idle));
    metrics::gauge!(names::DB_POOL_MAX_CONNECTIONS, "schema" => schema.to_owned()).set(f64::from(max));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_metrics_are_rendered_under_their_names_and_labels() {
        crate::prometheus();
        record_feed_lag(FeedReader::Relay, "test-relay", 7);
        record_feed_lag(FeedReader::Projection, "test-view", 3);
        record_feed_lag(FeedReader::Relay, "test-relay", 2);
        record_published("test.topic", 5);
        record_consumer_lag("test-group", "test.topic", 4, 11);
        record_assigned_partitions("test-group", "test.topic", 3);
        record_consumed("test-group", "test.topic", ConsumeResult::DeadLettered, 1);
        record_dead_letter("test-group", "test.topic");
        record_saga_outcome(SagaOutcome::Rejected("TEST_REASON"));
        record_saga_outcome(SagaOutcome::Released);
        record_relay_delay("test-relay", std::time::Duration::from_millis(3));
        record_relay_publish_duration("test-relay", std::time::Duration::from_millis(7));
        record_message_age("test-group", "test.topic", std::time::Duration::from_millis(20));
        record_oldest_unpublished("test-relay", Some(std::time::Duration::from_millis(1500)));
        record_oldest_unpublished("test-idle-relay", None);
        record_task_stalled("test-task", true);
        record_task_stalled("test-healthy-task", true);
        record_task_stalled("test-healthy-task", false);
        let text = crate::recorder::render();
        for line in [
            r#"relay_lag_events{feed="test-relay"} 2"#,
            r#"projection_lag_events{feed="test-view"} 3"#,
            r#"relay_published_total{topic="test.topic"} 5"#,
            r#"consumer_lag_messages{group="test-group",topic="test.topic",partition="4"} 11"#,
            r#"consumer_assigned_partitions{group="test-group",topic="test.topic"} 3"#,
            r#"messages_consumed_total{group="test-group",topic="test.topic",result="dead_lettered"} 1"#,
            r#"dead_letters_total{group="test-group",topic="test.topic"} 1"#,
            r#"saga_outcomes_total{outcome="rejected",reason="TEST_REASON"} 1"#,
            r#"saga_outcomes_total{outcome="released"} 1"#,
            r#"relay_delay_seconds_bucket{feed="test-relay",le="0.005"} 1"#,
            r#"relay_publish_duration_seconds_bucket{feed="test-relay",le="0.005"} 0"#,
            r#"relay_publish_duration_seconds_bucket{feed="test-relay",le="0.01"} 1"#,
            r#"consumer_message_age_seconds_bucket{group="test-group",topic="test.topic",le="0.025"} 1"#,
            r#"relay_oldest_unpublished_seconds{feed="test-relay"} 1.5"#,
            r#"relay_oldest_unpublished_seconds{feed="test-idle-relay"} 0"#,
            r#"pipeline_stalled{task="test-task"} 1"#,
            r#"pipeline_stalled{task="test-healthy-task"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
