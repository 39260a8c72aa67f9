//! Test support for end-to-end runs: both services started against one fresh
//! database and the real broker, with topics and consumer groups of their own, plus
//! a small HTTP client for the APIs. Also hosts the `loadgen` benchmark binary.
//!
//! Depends on both service crates; nothing depends on it.

pub mod client;
pub mod system;

pub use client::Api;
pub use system::{System, SystemOptions};
