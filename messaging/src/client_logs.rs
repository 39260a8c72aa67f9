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

use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Instant;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use telemetry::repeats::{REPEAT_WINDOW, Repeats, with_repeats};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
