//! What the services tell operators, in one place both the HTTP side and the Kafka
//! side can reach: metric names and the Prometheus recorder, structured logs, and
//! OpenTelemetry traces with W3C trace-context propagation.
//!
//! # Layout
//! - [`names`]: every metric name, with its labels; a new metric is added there.
//! - [`recorder`]: the process's Prometheus recorder, installed once.
//! - [`commands`]: counting commands by aggregate, type and result.
//! - [`pipeline`]: the event pipeline: feed lags, relay output, consumer lag and
//!   results, dead letters, saga outcomes.
//! - [`tracing_setup`]: log and trace settings, and the subscriber built from them.
//! - [`repeats`]: what keeps happening, logged without repeating itself.
//! - [`ids`]: the rule for correlation, request and causation ids.
//! - [`propagation`]: carrying a trace across a process boundary in W3C headers.
//! - `testing` (feature `test-support`): traces recorded in memory, for tests.
//!
//! Depends on no crate of ours and on neither `axum` nor `rdkafka`, so every crate
//! may use it.

pub mod commands;
pub mod ids;
pub mod names;
pub mod pipeline;
pub mod propagation;
pub mod recorder;
pub mod repeats;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod tracing_setup;

pub use commands::{
    CommandResult, CommitPath, commits_by_path, counted, record_command, record_commit, record_events_appended,
};
pub use ids::is_usable_id;
pub use pipeline::{ConsumeResult, FeedReader, SagaOutcome};
pub use propagation::{
    TRACE_HEADERS, TraceContext, current_trace_headers, extract_trace_context, inject_trace_context, set_parent,
};
pub use recorder::prometheus;
pub use tracing_setup::{LogFormat, Telemetry, TelemetrySettings, init, init_logging, log_panics};
