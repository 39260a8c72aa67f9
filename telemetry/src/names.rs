//! Metric names, one constant each, with the labels it carries. Names follow the
//! Prometheus conventions: `snake_case`, a unit suffix (`_seconds`), `_total` on
//! counters. Histograms whose name ends in `_seconds` get [`LATENCY_BUCKETS`].
//!
//! Both services export every metric here that they record. The HTTP and command
//! metrics are recorded by `http-server` and `eventstore`, the pipeline metrics
//! (feed lags, relay, consumers, saga) through [`crate::pipeline`].

/// Counter of HTTP requests answered. Labels: `method`, `route` (the route template,
/// e.g. `/oms/orders/{order_id}`, or `unmatched`), `status` (e.g. `404`).
pub const HTTP_REQUESTS: &str = "http_requests_total";

/// Histogram of the time from receiving a request to answering it, in seconds.
/// Labels: `method`, `route`, `status`.
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Counter of commands executed on aggregates. Labels: `aggregate` (`Order`,
/// `Product`), `command` (e.g. `PlaceOrder`), `result` (see
/// [`crate::CommandResult`]).
pub const COMMANDS: &str = "commands_total";

/// Counter of commits to the event store. Labels: `aggregate`, `path` (`statement`:
/// events and read-model rows in one statement; `transaction`: see
/// [`crate::CommitPath`]).
pub const COMMITS: &str = "event_store_commits_total";

/// Counter of events appended to the event store. Labels: `aggregate`.
pub const EVENTS_APPENDED: &str = "events_appended_total";

/// Gauge of events committed but not yet published by the outbox relay. Labels:
/// `feed` (the relay's checkpoint name).
pub const RELAY_LAG: &str = "relay_lag_events";

/// Counter of messages the outbox relay published. Labels: `topic`.
pub const RELAY_PUBLISHED: &str = "relay_published_total";

/// Histogram of the time from the start of the transaction that wrote an event to
/// the relay queueing its messages for the broker, in seconds. Labels: `feed`.
pub const RELAY_DELAY: &str = "relay_delay_seconds";

/// Histogram of the time from the relay queueing a batch to the broker acknowledging
/// all of it, in seconds. Labels: `feed`.
pub const RELAY_PUBLISH_DURATION: &str = "relay_publish_duration_seconds";

/// Histogram of the age of messages when the consumer receives them (from the
/// message's timestamp, set by its producer), in seconds. Labels: `group`, `topic`.
pub const CONSUMER_MESSAGE_AGE: &str = "consumer_message_age_seconds";

/// Gauge of messages in a partition after the consumer group's position. Labels:
/// `group`, `topic`, `partition`.
pub const CONSUMER_LAG: &str = "consumer_lag_messages";

/// Gauge of the partitions of a topic assigned to this instance as member of a
/// consumer group (the lag gauge keeps revoked partitions, at 0). Labels: `group`,
/// `topic`.
pub const CONSUMER_ASSIGNED_PARTITIONS: &str = "consumer_assigned_partitions";

/// Counter of messages consumed, by what became of them. Labels: `group`, `topic`,
/// `result` (`applied`, `ignored`, `dead_lettered`).
pub const MESSAGES_CONSUMED: &str = "messages_consumed_total";

/// Counter of messages sent to a dead-letter topic. Labels: `group`, `topic`.
pub const DEAD_LETTERS: &str = "dead_letters_total";

/// Counter of messages the outbox relay parked in `dead_letters` because they can
/// never be published (refused by the broker, or their event not routable). Labels:
/// `topic`.
pub const RELAY_PARKED: &str = "relay_parked_total";

/// Counter of reservation outcomes the saga decided. Labels: `outcome`
/// (`reserved`, `reduced`, `rejected`, `released`, `shipped`), `reason` for rejections.
pub const SAGA_OUTCOMES: &str = "saga_outcomes_total";

/// Gauge of events committed but not yet folded by a feed-fed read model. Labels:
/// `feed`.
pub const PROJECTION_LAG: &str = "projection_lag_events";

/// Counter of stuck order items asked for again: the order event that made them
/// pending, republished by the OMS. Labels: none.
pub const REREQUESTS: &str = "rerequests_total";

/// Counter of orders the OMS canceled because they were not paid within the payment
/// deadline. Labels: none.
pub const PAYMENT_TIMEOUTS: &str = "payment_timeouts_total";

/// Gauge, in seconds, of how long the oldest pending order has waited since its last
/// change (0 when none is pending). Labels: none.
pub const PENDING_OLDEST_AGE: &str = "pending_oldest_age_seconds";

/// Counter of item outcomes the saga announced again, from the product's state, for
/// re-requests of decided items. Labels: none.
pub const REANNOUNCED_OUTCOMES: &str = "reannounced_outcomes_total";

/// Gauge, 1 while a supervised background task of the service (the relay, a
/// consumer, the view follower) is down and waiting to be restarted, else 0. Labels:
/// `task`.
pub const PIPELINE_STALLED: &str = "pipeline_stalled";

/// Gauge of the age, in seconds, of the oldest committed event the outbox relay has
/// not yet published (from the start of the transaction that wrote it); 0 when none
/// waits. Only the instance leading the relay reports it. Labels: `feed`.
pub const RELAY_OLDEST_UNPUBLISHED: &str = "relay_oldest_unpublished_seconds";

/// Gauge of a service's database connections, by `schema` and `state`: `in_use`
/// (taken by a request or a task) or `idle`. All of
/// [`DB_POOL_MAX_CONNECTIONS`] in use means requests wait for a connection.
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";

/// Gauge of the most connections a service's pool opens (`DATABASE_MAX_CONNECTIONS`).
/// Labels: `schema`.
pub const DB_POOL_MAX_CONNECTIONS: &str = "db_pool_max_connections";

/// Bucket bounds, in seconds, of every `_seconds` histogram: from a cached read to
/// a request that waits on a slow database.
pub const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
