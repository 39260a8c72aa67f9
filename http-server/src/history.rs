//! `/events` in pages, as both services serve it: `from` (the first sequence) and
//! `limit`, and the `Link` to the next page while more events follow.

use serde::Deserialize;
use utoipa::IntoParams;

/// Most events one page holds, and how many when `limit` is not given.
pub const MOST_EVENTS_PER_PAGE: i64 = 1000;

/// `GET …/{id}/events` query parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The first event's sequence, from 1 (the default).
    #[param(minimum = 1, example = 1)]
    pub from: Option<i64>,
    /// Events per page, from 1 to 1000 (the default).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<i64>,
}

impl HistoryQuery {
    /// `(from, limit)` with the defaults; the message of a 422 when one is out of range.
    pub fn range(&self) -> Result<(i64, i64), String> {
        let from = self.from.unwrap_or(1);
        if from < 1 {
            return Err(format!("from: sequences start at 1, got {from}"));
        }
        let limit = self.limit.unwrap_or(MOST_EVENTS_PER_PAGE);
        if !(1..=MOST_EVENTS_PER_PAGE).contains(&limit) {
            return Err(format!("limit must be from 1 to {MOST_EVENTS_PER_PAGE}, got {limit}"));
        }
        Ok((from, limit))
    }
}

/// The `Link` header value of the page after this one, served at `path`.
pub fn next_page_link(path: &str, next_from: i64, limit: i64) -> String {
    format!("<{path}?from={next_from}&limit={limit}>; rel=\"next\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(HistoryQuery::default().range(), Ok((1, 1000)));
        assert_eq!(HistoryQuery { from: Some(7), limit: Some(1) }.range(), Ok((7, 1)));
        for (from, limit) in [(Some(0), None), (None, Some(0)), (None, Some(1001)), (Some(-3), Some(5))] {
            assert!(HistoryQuery { from, limit }.range().is_err(), "{from:?} {limit:?}");
        }
        assert_eq!(
            next_page_link("/oms/orders/x/events", 11, 10),
            "</oms/orders/x/events?from=11&limit=10>; rel=\"next\""
        );
    }
}
