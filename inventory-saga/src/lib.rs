//! The inventory service: products and their stock as event-sourced aggregates, the
//! inventory HTTP API on `/inventory/products`, and (with Kafka) the saga that reserves
//! stock for orders and the stock alerts.
//!
//! # Layout
//! - [`settings`]: flags and environment, read once.
//! - [`products`]: the application service: one command in, events committed, view out.
//! - [`metrics`]: command type names and results for the command counter.
//! - [`http`]: routes, request shapes, and the one mapping of errors to statuses.
//! - [`saga`]: the consumer of `oms.order-events` that reserves and releases stock.
//! - [`publishing`]: the outbox relay's route: outcomes and stock alerts.
//! - [`app`]: wiring: connect, migrate, bind, serve.
//!
//! Must not depend on `command-api`.

pub mod app;
pub mod http;
pub mod metrics;
pub mod products;
pub mod publishing;
pub mod saga;
pub mod settings;

pub use app::Application;
pub use settings::{Cli, Command, Settings};
