//! Consumer lag per partition: how many messages lie after the consumer group's
//! committed position, for the partitions this consumer is assigned.
//!
//! Measured by asking the broker, every interval, for the group's committed offsets
//! (one request) and each assigned partition's high watermark, rather than from
//! librdkafka's statistics: those are served through the consumer's queue, so they
//! would freeze while a batch is being handled, which is when lag matters. Works alike
//! on Apache Kafka and the development broker (whose end offsets are right as long as
//! producers send one message per batch, as its scripts set up).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use tokio_util::sync::CancellationToken;

use eventstore::sleep_or_cancel;

use crate::client_logs::ClientLogs;

/// How long one offset or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A partition: topic and number.
type Partition = (String, i32);

/// Messages after `committed` in a partition holding offsets `low` to `high`
/// (exclusive). A group that never committed there starts at the oldest message (the
/// consumers read from the earliest offset), so everything retained counts.
pub(crate) fn partition_lag(committed: Offset, low: i64, high: i64) -> u64 {
    let position = match committed {
        Offset::Offset(offset) => offset.max(low),
        _ => low,
    };
    u64::try_from(high - position).unwrap_or(0)
}

/// Reports the lag of `consumer`'s assigned partitions as group `group` every
/// `interval` until `shutdown`, and how many partitions of each topic are assigned. A
/// partition no longer assigned here is reported at 0 once, so that summing the gauge
/// over a group's instances gives the group's lag.
pub(crate) async fn report_consumer_lag(
    consumer: Arc<StreamConsumer<ClientLogs>>,
    group: String,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut reported: BTreeSet<Partition> = BTreeSet::new();
    loop {
        if sleep_or_cancel(interval, &shutdown).await {
            return;
        }
        let (consumer, stop) = (consumer.clone(), shutdown.clone());
        let lags = match tokio::task::spawn_blocking(move || measure(&consumer, &stop)).await {
            Ok(Ok(Some(lags))) => lags,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::debug!(%error, group, "cannot measure the consumer lag");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, group, "the consumer lag probe failed");
                continue;
            }
        };
        for ((topic, partition), lag) in &lags {
            telemetry::pipeline::record_consumer_lag(&group, topic, *partition, *lag);
        }
        for (topic, partition) in reported.iter().filter(|p| !lags.contains_key(*p)) {
            telemetry::pipeline::record_consumer_lag(&group, topic, *partition, 0);
        }
        let mut assigned: BTreeMap<&str, usize> = reported.iter().map(|(topic, _)| (topic.as_str(), 0)).collect();
        for (topic, _) in lags.keys() {
            *assigned.entry(topic.as_str()).or_default() += 1;
        }
        for (topic, count) in assigned {
            telemetry::pipeline::record_assigned_partitions(&group, topic, count);
        }
        reported = lags.into_keys().collect();
    }
}

/// The lag of every partition assigned to `consumer`; `None` when `shutdown` came
/// in between. Blocking.
fn measure(
    consumer: &StreamConsumer<ClientLogs>,
    shutdown: &CancellationToken,
) -> KafkaResult<Option<BTreeMap<Partition, u64>>> {
    let assignment = consumer.assignment()?;
    let mut lags = BTreeMap::new();
    if assignment.count() == 0 {
        return Ok(Some(lags));
    }
    let committed = consumer.committed_offsets(assignment, REQUEST_TIMEOUT)?;
    for element in committed.elements() {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        let (low, high) = consumer.fetch_watermarks(element.topic(), element.partition(), REQUEST_TIMEOUT)?;
        lags.insert((element.topic().to_owned(), element.partition()), partition_lag(element.offset(), low, high));
    }
    Ok(Some(lags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_committed_offset_or_else_from_the_oldest_message() {
        let cases = [
            ("committed in the middle", Offset::Offset(7), 0, 10, 3),
            ("committed at the end", Offset::Offset(10), 0, 10, 0),
            ("never committed: everything retained", Offset::Invalid, 4, 10, 6),
            ("committed before what is retained", Offset::Offset(1), 4, 10, 6),
            ("an empty partition", Offset::Invalid, 0, 0, 0),
            ("committed past the end (the end offset is stale)", Offset::Offset(12), 0, 10, 0),
        ];
        for (label, committed, low, high, expected) in cases {
            assert_eq!(partition_lag(committed, low, high), expected, "[{label}]");
        }
    }
}
