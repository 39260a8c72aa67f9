//! The Prometheus recorder: installed once per process, however many services (or
//! test instances of them) run in it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::names;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often the recorder's upkeep runs (it drains histogram samples into their
/// summaries), scraped or not: without it, samples pile up between scrapes, and
/// grow without bound where nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static UPKEEPS: AtomicU64 = AtomicU64::new(0);

/// The handle that renders this process's metrics in the Prometheus text format.
/// The first call installs the recorder; later calls return the same handle.
///
/// If another recorder was installed first (by an embedding program), metrics go to
/// that one and this handle renders nothing recorded through the `metrics` macros.
pub fn prometheus() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), names::LATENCY_BUCKETS)
            .expect("the latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will not show this service's metrics");
        }
        describe();
        let upkept = handle.clone();
        let timer = std::thread::Builder::new().name("metrics-upkeep".to_owned()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkept.run_upkeep();
                UPKEEPS.fetch_add(1, Ordering::Relaxed);
            }
        });
        if let Err(error) = timer {
            tracing::warn!(%error, "cannot start the metrics upkeep timer; upkeep runs at scrapes only");
        }
        handle
    })
}

/// How many times the upkeep timer has run in this process.
pub fn upkeeps() -> u64 {
    UPKEEPS.load(Ordering::Relaxed)
}

/// The `# HELP` lines.
fn describe() {
    metrics::describe_counter!(names::HTTP_REQUESTS, "HTTP requests answered, by method, route template and status");
    metrics::describe_histogram!(
        names::HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request"
    );
    metrics::describe_counter!(
        names::COMMANDS,
        "Commands executed on aggregates, by aggregate, command type and result"
    );
    metrics::describe_counter!(names::EVENTS_APPENDED, "Events appended to the event store, by aggregate");
    metrics::describe_counter!(
        names::COMMITS,
        "Commits to the event store, by aggregate and path (one statement, or a transaction)"
    );
    metrics::describe_gauge!(names::RELAY_LAG, "Events committed but not yet published by the outbox relay, by feed");
    metrics::describe_counter!(
        names::RELAY_PUBLISHED,
        "Messages the outbox relay published (acknowledged by the broker), by topic"
    );
    metrics::describe_gauge!(
        names::CONSUMER_LAG,
        "Messages after the consumer group's committed position, by group, topic and partition"
    );
    metrics::describe_gauge!(
        names::CONSUMER_ASSIGNED_PARTITIONS,
        "Partitions assigned to this instance, by consumer group and topic"
    );
    metrics::describe_counter!(names::MESSAGES_CONSUMED, "Messages consumed, by group, topic and result");
    metrics::describe_counter!(names::DEAD_LETTERS, "Messages sent to a dead-letter topic, by group and topic");
    metrics::describe_counter!(
        names::RELAY_PARKED,
        "Messages the outbox relay parked in dead_letters because they can never be published, by topic"
    );
    metrics::describe_counter!(
        names::SAGA_OUTCOMES,
        "Reservation outcomes the saga committed, by outcome (and reason for rejections)"
    );
    metrics::describe_gauge!(
        names::PROJECTION_LAG,
        "Events committed but not yet folded by a feed-fed read model, by feed"
    );
    metrics::describe_gauge!(
        names::PIPELINE_STALLED,
        "1 while a background task (relay, consumer, view follower) is down and being restarted, by task"
    );
    metrics::describe_gauge!(
        names::RELAY_OLDEST_UNPUBLISHED,
        metrics::Unit::Seconds,
        "Age of the oldest committed event the relay has not published yet (0: none waits), by feed"
    );
    metrics::describe_counter!(names::REREQUESTS, "Order events republished to ask again for items still pending");
    metrics::describe_counter!(names::PAYMENT_TIMEOUTS, "Orders canceled because they were not paid in time");
    metrics::describe_gauge!(
        names::PENDING_OLDEST_AGE,
        metrics::Unit::Seconds,
        "How long the oldest pending order has waited since its last change"
    );
    metrics::describe_counter!(
        names::REANNOUNCED_OUTCOMES,
        "Item outcomes announced again for re-requests of decided items"
    );
    metrics::describe_gauge!(names::DB_POOL_CONNECTIONS, "Database connections of the pool, by schema and state");
    metrics::describe_gauge!(names::DB_POOL_MAX_CONNECTIONS, "Most connections the pool opens, by schema");
}

/// The current metrics as Prometheus text.
pub fn render() -> String {
    let handle = prometheus();
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upkeep_runs_on_a_timer_without_a_scrape() {
        prometheus();
        let before = upkeeps();
        let started = std::time::Instant::now();
        while upkeeps() == before {
            assert!(started.elapsed() < UPKEEP_INTERVAL * 3, "no upkeep in {:?}", started.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn installing_twice_gives_one_recorder_that_sees_every_metric() {
        let first = prometheus() as *const PrometheusHandle;
        let second = prometheus() as *const PrometheusHandle;
        assert_eq!(first, second, "one handle per process");
        metrics::counter!(names::COMMANDS, "aggregate" => "Test", "command" => "Recount", "result" => "accepted")
            .increment(2);
        metrics::histogram!(names::HTTP_REQUEST_DURATION, "method" => "GET", "route" => "/test", "status" => "200")
            .record(0.003);
        let text = render();
        assert!(
            text.contains(r#"commands_total{aggregate="Test",command="Recount",result="accepted"} 2"#),
            "the counter is rendered: {text}"
        );
        assert!(
            text.contains(
                r#"http_request_duration_seconds_bucket{method="GET",route="/test",status="200",le="0.005"} 1"#
            ),
            "seconds histograms have buckets: {text}"
        );
    }
}
