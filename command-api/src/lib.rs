//! The Order Management Service (OMS): REST commands and queries on `/oms/orders`.
//!
//! Orders are event-sourced in PostgreSQL (schema `oms`); every accepted command
//! appends events, then the order view is brought up to date before the answer, so a
//! client reads its own writes. `GET` reads the view. Committed order events reach
//! Kafka through the outbox relay; the inventory service's per-item outcomes come back
//! through the outcome consumer.
//!
//! # Layout
//! - [`settings`]: the OMS's identity in the service kit (names, variables,
//!   defaults) and its own setting.
//! - [`orders`]: the application service: one command in, events committed, view out.
//! - [`http`]: routes, request/response shapes, and the one mapping of errors to
//!   statuses.
//! - [`publishing`]: the outbox relay's route: order events to `oms.order-events`
//!   (the message types, shared with the inventory service: `messaging::messages`).
//! - [`outcomes`]: the consumer of `inventory.order-outcomes` (reading
//!   `messaging::messages::outcomes`).
//! - [`rerequests`]: asking again for items still pending long after their request.
//! - [`payment_deadline`]: canceling resolved orders not paid in time.
//! - `periodic`: the pass-then-pause loop the two above share.
//! - [`app`]: wiring: the kit's start-up with the OMS's routes, relay route,
//!   consumer, re-requests, payment deadline and view follower.
//! - [`operations`]: the OMS's part of the kit's operator commands.
//! - `testing` (feature `test-support`): an order folded from its `/events` alone,
//!   for the API suite and the end-to-end tests.
//!
//! Must not depend on `inventory-saga`.

pub mod app;
pub mod http;
pub mod operations;
pub mod orders;
pub mod outcomes;
pub mod payment_deadline;
mod periodic;
pub mod publishing;
pub mod rerequests;
pub mod settings;
#[cfg(feature = "test-support")]
pub mod testing;

pub use app::Application;
pub use settings::{Cli, Command, Oms, Settings};
