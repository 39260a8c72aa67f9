//! A consumer the group left without work: assigned no partition although its topics
//! have enough partitions for every member of the group.
//!
//! librdkafka can end up there for good when its topics were missing while the group
//! formed and appear afterwards: it keeps the empty assignment and never rejoins (seen
//! after a broker restarted empty, where a topic comes back only when its producer
//! creates it again). The group's assignors give every member at least one partition
//! of a topic that has as many partitions as the group has members, so such a consumer
//! is stuck, not idle; a new client joins the group afresh. A topic the broker forgot
//! is created again by the watchdog (where the service may create topics), rather
//! than left until a producer of the other service creates it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use tokio_util::sync::CancellationToken;

use eventstore::sleep_or_cancel;

use crate::KafkaSettings;
use crate::client_logs::ClientLogs;
use crate::topics::ensure_topics;

/// How a consumer tells its service that it is stuck (`Some(why)`) or working again
/// (`None`); a service shows it in its readiness.
pub type StuckReport = Arc<dyn Fn(Option<String>) + Send + Sync>;

/// A report that goes nowhere, for a consumer whose health nobody watches.
pub fn unwatched() -> StuckReport {
    Arc::new(|_| {})
}

/// How often the watchdog looks for a consumer left without work.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long one metadata or group request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a consumer may go without work it should have before it says it is stuck:
/// three probes in a row, longer than a rebalance normally takes.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// How long a consumer may go without work it should have before it is replaced:
/// longer than a rebalance takes, even one waiting for a member's session to expire.
const STARVED_FOR: Duration = Duration::from_secs(30);

/// As [`STARVED_FOR`], when the broker says the group is stable (no rebalance under
/// way): then no rebalance will hand the consumer work, and waiting longer only
/// delays the work it holds up (measured: a consumer left so after the broker
/// crashed and restarted held its orders up for 30 s).
const STARVED_IN_A_STABLE_GROUP_FOR: Duration = Duration::from_secs(15);

/// What a look at a consumer without partitions found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// It has work, or none to have (more members than partitions).
    Fine,
    /// None of its topics exists: the broker forgot them (restarted empty).
    TopicsMissing,
    /// It lacks work it should have.
    Starved(Starved),
}

/// A consumer without partitions in a group whose topics have enough for every member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Starved {
    members: usize,
    partitions: usize,
    /// The group is `Stable` (no rebalance under way), as the broker reports it.
    stable: bool,
}

impl Starved {
    /// How long a consumer left so is given before it is replaced.
    fn replaced_after(self) -> Duration {
        if self.stable { STARVED_IN_A_STABLE_GROUP_FOR } else { STARVED_FOR }
    }
}

/// Watches `consumer`, a member of `group` subscribed to `topics`, every few seconds:
/// once it has been left without work it should have for [`STUCK_AFTER`] it says so
/// through `report` (and that it works again once it does); after [`STARVED_FOR`]
/// ([`STARVED_IN_A_STABLE_GROUP_FOR`] when the group is stable) it cancels `replace`
/// and returns. Returns too when `replace` is cancelled otherwise
/// (shutdown, the client replaced).
pub(crate) async fn replace_when_starved(
    consumer: Arc<StreamConsumer<ClientLogs>>,
    settings: KafkaSettings,
    group: String,
    topics: Arc<[String]>,
    report: StuckReport,
    replace: CancellationToken,
) {
    let mut starved_since: Option<Instant> = None;
    while !sleep_or_cancel(CHECK_EVERY, &replace).await {
        let (probe, probed_group, probed_topics) = (consumer.clone(), group.clone(), topics.clone());
        let starved = match tokio::task::spawn_blocking(move || starvation(&probe, &probed_group, &probed_topics)).await
        {
            Ok(Ok(starved)) => starved,
            // The broker unreachable: the consumer's own errors and the broker check
            // say so; nothing to decide here.
            Ok(Err(error)) => {
                tracing::debug!(%error, group, "cannot tell whether the consumer has work");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, group, "the consumer's starvation probe failed");
                continue;
            }
        };
        let starved @ Starved { members, partitions, stable } = match starved {
            Probe::Starved(starved) => starved,
            Probe::Fine => {
                starved_since = None;
                report(None);
                continue;
            }
            // Created again (where the service may create topics), so that the group
            // has partitions to hand out instead of waiting for a producer to create
            // them: a consumer waiting for its topics is stuck until one does.
            Probe::TopicsMissing => {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                if let Err(error) = ensure_topics(&settings, &names).await {
                    tracing::debug!(%error, group, "cannot create the consumer's missing topics");
                }
                continue;
            }
        };
        let since = *starved_since.get_or_insert_with(Instant::now);
        let starved_for = since.elapsed();
        if starved_for >= STUCK_AFTER {
            report(Some(format!(
                "holds no partition of {topics} for {} s although {topics} has {partitions} partition(s) and group {group} {members} member(s) (the client is replaced after {} s)",
                starved_for.as_secs(),
                starved.replaced_after().as_secs(),
                topics = topics.join(", "),
            )));
        }
        if starved_for >= starved.replaced_after() {
            tracing::warn!(
                group,
                ?topics,
                stable,
                starved_ms = starved_for.as_millis() as u64,
                "the group left this consumer without partitions although its topics have some for it; replacing the client"
            );
            replace.cancel();
            return;
        }
    }
}

/// Whether `consumer`, a member of `group` subscribed to `topics`, holds no partition
/// although one of its topics has a partition for each member of the group, or finds
/// none of its topics. Blocking.
fn starvation(consumer: &StreamConsumer<ClientLogs>, group: &str, topics: &[String]) -> KafkaResult<Probe> {
    if consumer.assignment()?.count() > 0 {
        return Ok(Probe::Fine);
    }
    let mut most_partitions = 0;
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        let partitions =
            metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.partitions().len()).sum::<usize>();
        most_partitions = most_partitions.max(partitions);
    }
    if most_partitions == 0 {
        return Ok(Probe::TopicsMissing);
    }
    let groups = consumer.fetch_group_list(Some(group), REQUEST_TIMEOUT)?;
    let listed = groups.groups().iter().find(|g| g.name() == group);
    let members = listed.map_or(0, |g| g.members().len());
    let stable = listed.is_some_and(|g| g.state() == "Stable");
    let starved = Starved { members, partitions: most_partitions, stable };
    Ok(if lacks_work(members, most_partitions) { Probe::Starved(starved) } else { Probe::Fine })
}

/// Whether a member with no partition lacks work it should have, in a group of
/// `members` whose largest subscribed topic has `partitions`.
fn lacks_work(members: usize, partitions: usize) -> bool {
    partitions > 0 && members <= partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_without_partitions_lacks_work_only_when_there_are_enough_for_all() {
        let cases = [
            ("alone, topic with partitions", 1, 3, true),
            ("not even listed as a member yet", 0, 3, true),
            ("as many members as partitions", 3, 3, true),
            ("more members than partitions: someone must idle", 4, 3, false),
            ("no partitions at all", 1, 0, false),
        ];
        for (label, members, partitions, expected) in cases {
            assert_eq!(lacks_work(members, partitions), expected, "[{label}]");
        }
    }

    #[test]
    fn a_starved_consumer_is_replaced_sooner_when_no_rebalance_is_under_way() {
        let starved = |stable| Starved { members: 1, partitions: 3, stable };
        assert_eq!(starved(true).replaced_after(), STARVED_IN_A_STABLE_GROUP_FOR);
        assert_eq!(starved(false).replaced_after(), STARVED_FOR, "a rebalance may still hand it work");
        assert!(STUCK_AFTER < STARVED_IN_A_STABLE_GROUP_FOR, "it says it is stuck before it is replaced");
        assert!(STARVED_IN_A_STABLE_GROUP_FOR < STARVED_FOR);
    }
}
