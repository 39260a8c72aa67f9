//! What librdkafka reports, logged without repeating itself.
//!
//! While a broker is away, every client of a service (its producers, consumers, the
//! admin and probe clients) reports each failed connection attempt twice (a log line
//! and an error event), again after every reconnect backoff, and each says that all
//! brokers are down: measured, 151 and 173 ERROR lines in the 15 s a broker was down,
//! the same few messages over and over. Here a message is logged the first time it
//! comes, then at most once a [`REPEAT_WINDOW`] while it keeps coming, with how many
//! times it came meanwhile; messages that differ only in their numbers (ports,
//! milliseconds, counts) count as one ([`telemetry::repeats`]). Every client the
//! services build takes [`ClientLogs`] as its context.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use telemetry::repeats::REPEAT_WINDOW;

/// Messages remembered at most; beyond that, those not logged within the window are
/// forgotten.
const MOST_REMEMBERED: usize = 256;

/// The context of every Kafka client of the services: librdkafka's logs and errors
/// through [`log`] and [`error`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientLogs;

impl ClientContext for ClientLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self::error(&error, reason);
    }
}

impl ConsumerContext for ClientLogs {}

/// Logs a librdkafka log line, unless it repeats one logged within the window.
pub fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    if matches!(level, RDKafkaLogLevel::Debug) {
        tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}");
        return;
    }
    let Some(repeats) = admit(&format!("{facility} {message}")) else { return };
    let message = with_repeats(message, repeats);
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "librdkafka: {facility} {message}"),
        _ => tracing::info!(target: "librdkafka", "librdkafka: {facility} {message}"),
    }
}

/// Logs an error librdkafka reported, unless it repeats one logged within the window.
pub fn error(error: &KafkaError, reason: &str) {
    let line = format!("{error}: {reason}");
    if let Some(repeats) = admit(&line) {
        tracing::error!(target: "rdkafka::client", "librdkafka: {}", with_repeats(&line, repeats));
    }
}

/// `line`, saying how many times it came since it was last logged, if it did.
fn with_repeats(line: &str, repeats: u64) -> String {
    if repeats == 0 { line.to_owned() } else { format!("{line} (and {repeats} more like it since it was last logged)") }
}

/// Whether a line like `line` may be logged now; if so, how many were held back since
/// the last one was.
fn admit(line: &str) -> Option<u64> {
    static REPEATS: LazyLock<Mutex<Repeats>> = LazyLock::new(|| Mutex::new(Repeats::new(REPEAT_WINDOW)));
    REPEATS.lock().unwrap_or_else(PoisonError::into_inner).admit(shape(line), Instant::now())
}

/// What a line says without its numbers, and without the count of repeats librdkafka
/// itself appends.
fn shape(line: &str) -> String {
    telemetry::repeats::shape(line).replace(", # identical error(s) suppressed", "")
}

/// The lines seen recently: when each was last logged, and how many came since.
#[derive(Debug)]
struct Repeats {
    window: Duration,
    seen: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    logged_at: Instant,
    held_back: u64,
}

impl Repeats {
    fn new(window: Duration) -> Self {
        Self { window, seen: HashMap::new() }
    }

    /// Whether a line of shape `shape` coming at `now` is logged; if so, how many like
    /// it were held back since the last one was.
    fn admit(&mut self, shape: String, now: Instant) -> Option<u64> {
        if let Some(seen) = self.seen.get_mut(&shape) {
            if now.duration_since(seen.logged_at) < self.window {
                seen.held_back += 1;
                return None;
            }
            let held_back = std::mem::take(&mut seen.held_back);
            seen.logged_at = now;
            return Some(held_back);
        }
        if self.seen.len() >= MOST_REMEMBERED {
            let window = self.window;
            self.seen.retain(|_, seen| now.duration_since(seen.logged_at) < window);
        }
        // So many different lines within one window are logged, not remembered.
        if self.seen.len() < MOST_REMEMBERED {
            self.seen.insert(shape, Seen { logged_at: now, held_back: 0 });
        }
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_logged_first_then_once_a_window_with_the_count_held_back() {
        let mut repeats = Repeats::new(Duration::from_secs(60));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(repeats.admit("all brokers down".into(), at(0)), Some(0));
        assert_eq!(repeats.admit("all brokers down".into(), at(1)), None);
        assert_eq!(repeats.admit("all brokers down".into(), at(59)), None);
        assert_eq!(repeats.admit("another".into(), at(59)), Some(0), "another line is not held back by the first");
        assert_eq!(repeats.admit("all brokers down".into(), at(60)), Some(2), "the two held back are counted");
        assert_eq!(repeats.admit("all brokers down".into(), at(61)), None);
        assert_eq!(repeats.admit("all brokers down".into(), at(200)), Some(1));
    }

    #[test]
    fn lines_that_differ_in_their_numbers_or_librdkafkas_own_repeat_count_are_alike() {
        let first = "FAIL [thrd:127.0.0.1:33313/1]: 127.0.0.1:33313/1: Connect to ipv4#127.0.0.1:33313 failed: \
                     Connection refused (after 0ms in state CONNECT)";
        let later = "FAIL [thrd:127.0.0.1:33313/1]: 127.0.0.1:33313/1: Connect to ipv4#127.0.0.1:33313 failed: \
                     Connection refused (after 12ms in state CONNECT, 1 identical error(s) suppressed)";
        assert_eq!(shape(first), shape(later));
        assert_eq!(shape("1/1 brokers are down"), shape("2/2 brokers are down"));
        assert_ne!(shape("Connection refused"), shape("SSL handshake failed"), "what differs in words stays apart");
    }

    #[test]
    fn memory_is_bounded_by_forgetting_lines_not_logged_within_the_window() {
        let mut repeats = Repeats::new(Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..MOST_REMEMBERED {
            repeats.admit(format!("line {i}"), start);
        }
        assert_eq!(repeats.seen.len(), MOST_REMEMBERED);
        assert_eq!(repeats.admit("beyond".into(), start), Some(0), "logged");
        assert_eq!(repeats.admit("beyond".into(), start), Some(0), "not remembered while every line is recent");
        assert_eq!(repeats.seen.len(), MOST_REMEMBERED);
        repeats.admit("one more".into(), start + Duration::from_secs(61));
        assert_eq!(repeats.seen.len(), 1, "the old lines are forgotten, the new one kept");
        repeats.admit("and another".into(), start + Duration::from_secs(62));
        assert_eq!(repeats.seen.len(), 2);
    }
}
