//! The business core of the order-processing system: the `Order` aggregate (OMS) and
//! the `Product` aggregate (inventory), with their commands, events, errors and value
//! types.
//!
//! This crate does no I/O and knows nothing of HTTP, SQL or Kafka; it must not depend on
//! `sqlx`, `axum`, `rdkafka` or any other crate of this workspace. Each aggregate
//! *decides* (`decide`, synchronous, all rules) and *records* (`apply`, no rules, never
//! fails); the cqrs-es `handle` only writes what `decide` returned.
//!
//! # Layout
//! - [`ids`], [`quantity`]: value types that cannot hold invalid values.
//! - [`order`]: the order lifecycle, item outcomes, idempotent placement, and the
//!   upcasters that read past versions of its events.
//! - [`inventory`]: stock, reservations per (order, product), stock alerts.

pub mod ids;
pub mod inventory;
pub mod order;
pub mod quantity;

pub use ids::{InvalidId, OrderId, ProductId, UserId};
pub use quantity::{InvalidQuantity, Quantity};
