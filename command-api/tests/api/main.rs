//! Integration tests of the Order Management Service: real HTTP on port 0, one fresh
//! database per test, the contract of `DESIGN.md` checked value by value.
//!
//! # Layout
//! - `helpers`: `spawn_app()`, requests, envelope checks, the history fold.
//! - `topics`: the shared broker, and a topic read back from its beginning.
//! - `place`, `update`, `queries`: the contract, route by route.
//! - `as_of`: `GET ?asOf=` at every version and every event time.
//! - `transitions`: every status move reachable without the inventory saga.
//! - `bad_input`: tables of refused requests; none leaves an event behind.
//! - `idempotency`: the `Idempotency-Key` of `POST`.
//! - `concurrency`: many writers on one order; no lost update, no 5xx.
//! - `history_pages`: `/events` in pages with `Link: rel="next"`.
//! - `conditional_writes`: `ETag` on reads and writes, `If-Match` on `PUT` (412 when stale).
//! - `operations`: the operator commands (history, export, rebuild) as a process.
//! - `rerequests`: stuck items asked for again, with backoff, by one instance of two.
//! - `payment_deadline`: unpaid orders canceled once, after restarts, never once paid.
//! - `dead_letters`: `dlq list`, `show` and `replay` as a process, with the broker.
//! - `versioning`: orders whose placement is stored as `OrderPlaced` 1.0; the key in 2.0.
//! - `documentation`: `/openapi.json` lists the routes; examples and answers fit it.
//! - `exactness`: the document allows a parameter or body exactly when the service does.
//! - `observability`: metrics, readiness, `--help`.

mod as_of;
mod bad_input;
mod concurrency;
mod conditional_writes;
mod dead_letters;
mod documentation;
mod exactness;
mod healing;
mod helpers;
mod history_pages;
mod idempotency;
mod observability;
mod operations;
mod payment_deadline;
mod place;
mod queries;
mod rerequests;
mod topics;
mod transitions;
mod update;
mod versioning;
