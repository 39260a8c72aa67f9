//! The inventory service: products and their stock as event-sourced aggregates, the
//! inventory HTTP API on `/inventory/products`, and (with Kafka) the saga that reserves
//! stock for orders and the stock alerts.
//!
//! # Layout
//! - [`settings`]: the inventory service's identity in the service kit (names,
//!   variables, defaults).
//! - [`products`]: the application service: one command in, events committed, view out.
//! - [`reservations`]: what each product holds per order, kept beside its events.
//! - [`http`]: routes, request shapes, and the one mapping of errors to statuses.
//! - [`saga`]: the consumer of `oms.order-events` that reserves and releases stock.
//! - [`publishing`]: the outbox relay's route: outcomes and stock alerts (the message
//!   types, shared with the OMS: `messaging::messages`).
//! - [`reannounce`]: announcing a decided outcome again when the OMS re-requests it.
//! - [`app`]: wiring: the kit's start-up with the service's routes, relay route,
//!   saga and view follower.
//! - [`operations`]: the service's part of the kit's operator commands, and its own
//!   (`ship-held`).
//!
//! Must not depend on `command-api`.

pub mod app;
pub mod http;
pub mod operations;
pub mod products;
pub mod publishing;
pub mod reannounce;
pub mod reservations;
pub mod saga;
pub mod settings;

pub use app::Application;
pub use operations::InventoryCommands;
pub use settings::{Cli, Command, Inventory, Settings};
