//! End-to-end tests: both services, the real PostgreSQL and the real broker.
//! Each test starts its own system (database, topics and consumer groups of its own).

mod broker;
mod contention;
mod publishing;
mod crash;
mod history;
mod invariants;
mod operations;
mod redelivery;
mod scenarios;
mod versioning;
