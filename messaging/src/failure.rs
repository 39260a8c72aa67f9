//! Telling permanent failures from transient ones, at the boundaries that retry.
//!
//! A permanent failure is one that the same input meets again however often it is
//! tried: PostgreSQL refusing the data itself (a NUL character in jsonb, a value out of
//! range, a constraint, a program limit), or the broker refusing the message itself
//! (too large, invalid, against a policy). Such input is parked with its reason so that
//! the flow goes on. Everything else (connections lost, timeouts, the broker or the
//! database away, conflicts between writers), and whatever is not recognised, is
//! transient: retried with backoff, never parked.

use std::fmt;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Whether trying again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The input can never succeed as it is: park it.
    Permanent,
    /// Something we depend on failed: try again later.
    Transient,
}

/// SQLSTATE classes that mean "this input can never be stored": 21 cardinality
/// violation (one statement touching a row twice, e.g. two messages of a batch that
/// upsert the same row), 22 data exception (22P05 a NUL in jsonb, 22001 too long,
/// 22003 out of range), 23 integrity constraint violation, 54 program limit exceeded
/// (a value too large for an index, too many parameters).
const PERMANENT_SQLSTATE_CLASSES: [&str; 4] = ["21", "22", "23", "54"];

/// How a handler's failure is to be treated: the first `sqlx::Error` in its chain
/// decides (see [`classify_sqlx`]); a chain without one is transient.
pub fn classify(error: &anyhow::Error) -> Failure {
    error.chain().find_map(|cause| cause.downcast_ref::<sqlx::Error>()).map_or(Failure::Transient, classify_sqlx)
}

/// How a database error is to be treated. Errors of the input (SQLSTATE classes 21,
/// 22, 23, 54; a value that cannot be encoded) are permanent; connection and I/O
/// errors, pool timeouts, 08 connection exceptions, 40001 serialization failures,
/// 40P01 deadlocks, 53 insufficient resources, 57 operator intervention (statement
/// timeouts, shutdowns) and anything else are transient.
pub fn classify_sqlx(error: &sqlx::Error) -> Failure {
    match error {
        sqlx::Error::Database(database) => match database.code() {
            Some(code) if PERMANENT_SQLSTATE_CLASSES.iter().any(|class| code.starts_with(class)) => Failure::Permanent,
            _ => Failure::Transient,
        },
        sqlx::Error::Encode(_) => Failure::Permanent,
        _ => Failure::Transient,
    }
}

/// The SQLSTATE of the first database error in `error`'s chain, if any, for logs.
pub fn sqlstate(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| match cause.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(database)) => database.code().map(|code| code.into_owned()),
        _ => None,
    })
}

/// What a failed Kafka operation calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaFailure {
    /// The broker refuses this message for good (too large, invalid, against a
    /// policy, an invalid topic): park it.
    Permanent,
    /// The client is unusable for good (fenced, its idempotence state lost): replace
    /// it, then try again.
    Fatal,
    /// The topic is unknown (a broker that restarted empty forgot it): create the
    /// topics, then try again.
    UnknownTopic,
    /// Try again later (broker away, timeouts, a full queue).
    Transient,
}

impl fmt::Display for KafkaFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Permanent => "permanent",
            Self::Fatal => "fatal",
            Self::UnknownTopic => "unknown topic",
            Self::Transient => "transient",
        })
    }
}

/// How a failed produce (at queueing or in the delivery report) is to be treated.
pub fn classify_kafka(error: &KafkaError) -> KafkaFailure {
    if matches!(error, KafkaError::MessageConsumptionFatal(_)) {
        return KafkaFailure::Fatal;
    }
    error.rdkafka_error_code().map_or(KafkaFailure::Transient, classify_kafka_code)
}

/// How a librdkafka error code is to be treated (see [`classify_kafka`]).
pub fn classify_kafka_code(code: RDKafkaErrorCode) -> KafkaFailure {
    use RDKafkaErrorCode as Code;
    match code {
        // InvalidMessage is Kafka's CORRUPT_MESSAGE, MessageBatchTooLarge its
        // RECORD_LIST_TOO_LARGE.
        Code::MessageSizeTooLarge
        | Code::InvalidMessageSize
        | Code::MessageBatchTooLarge
        | Code::InvalidRecord
        | Code::PolicyViolation
        | Code::InvalidMessage
        | Code::InvalidTopic
        | Code::UnsupportedForMessageFormat => KafkaFailure::Permanent,
        Code::ProducerFenced
        | Code::InvalidProducerEpoch
        | Code::UnknownProducerId
        | Code::OutOfOrderSequenceNumber
        | Code::InvalidProducerIdMapping
        | Code::Fatal => KafkaFailure::Fatal,
        Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownTopicId => KafkaFailure::UnknownTopic,
        _ => KafkaFailure::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn broker_refusals_of_the_message_itself_are_permanent() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::PolicyViolation,
            RDKafkaErrorCode::MessageBatchTooLarge,
        ] {
            assert_eq!(classify_kafka(&KafkaError::MessageProduction(code)), KafkaFailure::Permanent, "{code:?}");
        }
    }

    #[test]
    fn a_fenced_or_fatally_failed_producer_is_to_be_replaced() {
        for code in [
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::Fatal,
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
            RDKafkaErrorCode::UnknownProducerId,
        ] {
            assert_eq!(classify_kafka(&KafkaError::MessageProduction(code)), KafkaFailure::Fatal, "{code:?}");
        }
    }

    #[test]
    fn outages_and_full_queues_are_transient_and_forgotten_topics_are_created_again() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            assert_eq!(classify_kafka(&KafkaError::MessageProduction(code)), KafkaFailure::Transient, "{code:?}");
        }
        assert_eq!(
            classify_kafka(&KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition)),
            KafkaFailure::UnknownTopic
        );
        assert_eq!(classify_kafka(&KafkaError::Canceled), KafkaFailure::Transient);
    }

    #[test]
    fn an_error_without_a_database_error_inside_is_transient() {
        let error = anyhow::anyhow!("something we do not know").context("handling");
        assert_eq!(classify(&error), Failure::Transient);
        assert_eq!(classify(&anyhow::Error::from(sqlx::Error::PoolTimedOut).context("handling")), Failure::Transient);
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(classify(&Err::<(), _>(io).context("handling").unwrap_err()), Failure::Transient);
    }
}
