//! End-to-end tests: both services, the real PostgreSQL and the real broker.
//! Each test starts its own system (database, topics and consumer groups of its own).

mod blackhole;
mod broker;
mod contention;
mod crash;
mod downstream;
mod faults;
mod history;
mod invariants;
mod lifecycle;
mod load;
mod memory;
mod operations;
mod outage;
mod publishing;
mod redelivery;
mod scale_out;
mod scenarios;
mod scrape;
mod security;
mod shutdown;
mod trace_context;
mod versioning;
