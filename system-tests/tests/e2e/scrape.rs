//! Reading a service's `/metrics` (Prometheus text) in tests.

use std::collections::BTreeMap;
use std::time::Duration;

use system_tests::ServiceProcess;

/// One sample: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label name to value.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// The samples of metric `name` in `text`.
pub fn samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, labels) = match series.split_once('{') {
                Some((series_name, labels)) => (series_name, labels.strip_suffix('}')?),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    pair.split_once("=\"").map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
                })
                .collect();
            Some(Sample { labels, value: value.parse().ok()? })
        })
        .collect()
}

/// The samples of metric `name` whose labels include every pair of `labels`.
pub fn matching(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
    samples(text, name)
        .into_iter()
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect()
}

/// The sum of the samples of metric `name` whose labels include `labels` (0 when none).
pub fn total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    matching(text, name, labels).iter().map(|s| s.value).sum()
}

/// Scrapes `service` until `holds` is true of its metrics; returns them. Fails, naming
/// `what` and showing the last metrics scraped, after `timeout`.
pub async fn until(
    service: &ServiceProcess,
    http: &reqwest::Client,
    what: &str,
    timeout: Duration,
    holds: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let text = service.metrics(http).await.unwrap_or_else(|e| panic!("scraping {}: {e:#}", service.base_url));
        if holds(&text) {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not seen in {timeout:?}; last metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn samples_are_read_with_their_labels() {
    let text = "# TYPE x counter\nx{a=\"1\",b=\"t.topic\"} 3\nx{a=\"2\"} 4\nxy 5\nx 6\n";
    assert_eq!(total(text, "x", &[]), 13.0);
    assert_eq!(total(text, "x", &[("a", "1")]), 3.0);
    assert_eq!(matching(text, "x", &[("b", "t.topic")])[0].labels["a"], "1");
    assert_eq!(total(text, "xy", &[]), 5.0);
}
