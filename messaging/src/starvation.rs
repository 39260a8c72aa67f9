//! A consumer the group left without work: assigned no partition although its topics
//! have enough partitions for every member of the group.
//!
//! librdkafka can end up there for good when its topics were missing while the group
//! formed and appear afterwards: it keeps the empty assignment and never rejoins (seen
//! after a broker restarted empty, where a topic comes back only when its producer
//! creates it again). The group's assignors give every member at least one partition
//! of a topic that has as many partitions as the group has members, so such a consumer
//! is stuck, not idle; a new client joins the group afresh.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;

/// How long one metadata or group request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a consumer may go without work it should have before it is replaced:
/// longer than a rebalance takes, even one waiting for a member's session to expire.
pub(crate) const STARVED_FOR: Duration = Duration::from_secs(30);

/// Whether `consumer`, a member of `group` subscribed to `topics`, holds no partition
/// although one of its topics has a partition for each member of the group. Blocking.
pub(crate) fn is_starved(consumer: &StreamConsumer, group: &str, topics: &[String]) -> KafkaResult<bool> {
    if consumer.assignment()?.count() > 0 {
        return Ok(false);
    }
    let mut most_partitions = 0;
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        let partitions =
            metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.partitions().len()).sum::<usize>();
        most_partitions = most_partitions.max(partitions);
    }
    if most_partitions == 0 {
        return Ok(false);
    }
    let groups = consumer.fetch_group_list(Some(group), REQUEST_TIMEOUT)?;
    let members = groups.groups().iter().find(|g| g.name() == group).map_or(0, |g| g.members().len());
    Ok(lacks_work(members, most_partitions))
}

/// Whether a member with no partition lacks work it should have, in a group of
/// `members` whose largest subscribed topic has `partitions`.
pub(crate) fn lacks_work(members: usize, partitions: usize) -> bool {
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
}
