//! Integration tests of the inventory service: real HTTP on port 0, one fresh database
//! per test, the contract of `DESIGN.md` checked value by value.
//!
//! # Layout
//! - `helpers`: `spawn_app()`, requests, envelope checks, the history fold.
//! - `products`: add, get, restock, stock status, health probes.
//! - `listing`: keyset pages of products.
//! - `history`: `/events`, its metadata and alerts; the read model is its fold; `asOf`.
//! - `bad_input`: a table of refused requests; none leaves an event behind.
//! - `concurrency`: many writers on one product.
//! - `history_pages`: `/events` in pages with `Link: rel="next"`.
//! - `idempotent_writes`: restocks and adjustments with an `Idempotency-Key`.
//! - `updates`: `PUT` of a product: name, threshold and the alert it implies;
//!   adjustments, which never take reserved units.
//! - `conditional_writes`: `ETag` on reads and writes, `If-Match` on restocks and
//!   adjustments (412 when stale).
//! - `operations`: the operator commands (history, export, rebuild, ship-held) as a
//!   process.
//! - `dead_letters`: `dlq` on the inventory schema, and a product event re-driven.
//! - `documentation`: `/openapi.json` lists the routes; examples and answers fit it.
//! - `exactness`: the document allows a parameter or body exactly when the service does.
//! - `observability`: metrics, readiness, `--help`.
//! - `reservations`: products with their orders kept apart and snapshots decide as the
//!   full fold: warm, cold, redelivered, from snapshots, after the upgrade backfill.
//! - `shipments`: the saga ships what an order holds when its shipment names no
//!   products (`OrderStatusChanged` 1.0), once, whatever is redelivered.

mod bad_input;
mod concurrency;
mod conditional_writes;
mod dead_letters;
mod documentation;
mod exactness;
mod helpers;
mod history;
mod history_pages;
mod idempotent_writes;
mod listing;
mod observability;
mod operations;
mod products;
mod reservations;
mod shipments;
mod updates;
