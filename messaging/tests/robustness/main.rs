//! Permanent and transient failures told apart against the real PostgreSQL and the
//! real broker: the classifier on real database errors, the consumer parking exactly
//! the message that fails for good, the relay parking what the broker refuses and
//! recovering from a broker paused past its message timeout.

mod consumer;
// The private broker lives with the system tests, which depend on this crate: included
// as source, it adds no dependency either way. Not all of it is used here.
#[allow(dead_code)]
#[path = "../../../system-tests/src/dev_broker.rs"]
mod dev_broker;
mod failure;
mod relay;
mod support;
