//! Kafka plumbing both services share. Code here speaks only the Kafka protocol
//! through `rdkafka`, so it runs on Apache Kafka, Redpanda, a managed Kafka or the
//! development broker alike.
//!
//! # Layout
//! - [`settings`]: brokers, security, topic names, librdkafka pass-through properties.
//! - [`envelope`]: the JSON message every topic carries, and its headers.
//! - [`messages`]: every message the two services exchange (order events, item
//!   outcomes, stock alerts), one type each for its producer and its consumer, with
//!   their names, versions and pinned wire form.
//! - [`topics`]: creating missing topics at start-up.
//! - [`probe`]: whether the brokers answer, for readiness.
//! - [`client_logs`]: librdkafka's logs and errors, each logged once a minute at most
//!   while it repeats (the context of every client).
//! - [`relay`]: the outbox relay: committed events from the feed to Kafka, with a
//!   persisted checkpoint (never a dual write after commit).
//! - [`consumer`]: the at-least-once consumer loop, a batch at a time: offsets are
//!   stored only after the batch's effects are durable; poison messages go to a
//!   dead-letter topic.
//! - [`failure`]: telling permanent failures (park) from transient ones (retry).
//! - [`dead_letters`]: parking what can never be processed or published in the
//!   `dead_letters` table.
//! - `producer`: a producer replaced when its client fails for good.
//! - [`redrive`]: producing dead letters back to the broker (`dlq replay`).
//! - `lag`: the consumer lag per partition, measured beside the consumer loop.
//! - [`starvation`]: telling a consumer the group left without work it should have,
//!   watched beside the consumer loop: it says it is stuck, then its client is replaced.
//!
//! Depends on `domain` for the messages' fields only; must not depend on `axum`.

pub mod client_logs;
pub mod consumer;
pub mod dead_letters;
pub mod envelope;
pub mod failure;
mod lag;
pub mod messages;
pub mod probe;
pub mod producer;
pub mod redrive;
pub mod relay;
pub mod settings;
pub mod starvation;
pub mod topics;

pub use consumer::{Handled, IncomingMessage, MessageHandler, Parking, Unprocessable, Verdict, run_consumer};
pub use envelope::{Envelope, OutgoingMessage};
pub use probe::BrokerProbe;
pub use producer::ReplaceableProducer;
pub use relay::{Relay, Route, Unroutable};
pub use settings::{KafkaSettings, Topics};
pub use starvation::StuckReport;
