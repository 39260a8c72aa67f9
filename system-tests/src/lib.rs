//! Test support for end-to-end runs: both services started against one fresh
//! database and the real broker, with topics and consumer groups of their own, in
//! this process ([`system`]) or as child processes a test can kill and restart
//! ([`processes`]); a small HTTP client for the APIs ([`client`]); direct access to
//! the broker: offsets, reading topics ([`broker`]); a private broker a test may pause
//! or restart empty ([`dev_broker`]); a private broker that only speaks TLS, with SASL or
//! client certificates ([`secure_broker`]); a private PostgreSQL cluster a test may crash
//! ([`pg_cluster`]). Also hosts the `loadgen` benchmark binary.
//!
//! Depends on both service crates; nothing depends on it.

pub mod broker;
pub mod client;
pub mod dev_broker;
pub mod pg_cluster;
pub mod processes;
pub mod secure_broker;
pub mod system;
pub mod tcp_proxy;

pub use client::Api;
pub use dev_broker::DevBroker;
pub use pg_cluster::PgCluster;
pub use processes::{ProcessOptions, ProcessSystem, ServiceProcess};
pub use secure_broker::SecureBroker;
pub use system::{Deployment, Service, System, SystemOptions};
pub use tcp_proxy::TcpProxy;
