//! A view as it was at some point of its aggregate's history, folded from the events
//! (never read from the table), for auditors.

use chrono::{DateTime, Utc};
use eventstore::{Aggregate, AggregateStore};

use crate::{ProjectionError, View};

/// A point in an aggregate's history: a version (`3`) or an RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum AsOf {
    /// Right after the event with this sequence.
    Version(u64),
    /// With every event recorded (its transaction begun) at or before this time.
    Time(DateTime<Utc>),
}

impl std::str::FromStr for AsOf {
    type Err = String;

    /// A version (a whole number from 1) or an RFC 3339 time.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(version) = text.parse::<u64>() {
            return if version >= 1 { Ok(Self::Version(version)) } else { Err("versions start at 1".to_owned()) };
        }
        DateTime::parse_from_rfc3339(text).map(|time| Self::Time(time.with_timezone(&Utc))).map_err(|_| {
            format!("give a version (1, 2, ...) or an RFC 3339 time such as 2026-12-01T10:00:00Z, got '{text}'")
        })
    }
}

impl TryFrom<String> for AsOf {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// The view of `aggregate_id` as it was at `as_of`; `None` when the aggregate did
/// not exist yet (or has no such version).
pub async fn view_as_of<V>(
    store: &AggregateStore<V::Aggregate>,
    aggregate_id: &str,
    as_of: AsOf,
) -> Result<Option<V>, ProjectionError>
where
    V: View,
    V::Aggregate: Aggregate<Services = ()> + Clone,
    <V::Aggregate as Aggregate>::Command: Clone,
{
    let failed =
        |e: eventstore::ExecuteError<<V::Aggregate as Aggregate>::Error>| ProjectionError::EventStore(e.to_string());
    let last = match as_of {
        AsOf::Version(version) => version,
        AsOf::Time(time) => store.version_at(aggregate_id, time).await.map_err(failed)?,
    };
    let events = store.load_events(aggregate_id).await.map_err(failed)?;
    if last == 0 || events.len() < last as usize {
        return Ok(None);
    }
    V::fold(events.iter().take_while(|e| e.sequence as u64 <= last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_a_version_from_one_or_an_rfc3339_time() {
        assert_eq!("3".parse::<AsOf>(), Ok(AsOf::Version(3)));
        let time = "2026-12-01T10:00:00+01:00".parse::<AsOf>().expect("a time");
        assert_eq!(
            time,
            AsOf::Time(DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").expect("utc").with_timezone(&Utc))
        );
        assert_eq!("0".parse::<AsOf>(), Err("versions start at 1".to_owned()));
        for bad in ["-1", "yesterday", "", "2026-13-01T00:00:00Z"] {
            let error = bad.parse::<AsOf>().expect_err(bad);
            assert!(error.starts_with("give a version") && error.ends_with(&format!("got '{bad}'")), "{bad}: {error}");
        }
    }
}
