//! Command line and environment of the `oms` binary.

use clap::{Parser, Subcommand};
use http_server::{DatabaseSessionSettings, DatabaseSettings, HttpSettings, LifecycleSettings, TelemetrySettings};
use messaging::KafkaSettings;

/// The Order Management Service: REST commands and queries on orders, event-sourced
/// in PostgreSQL.
///
/// Every setting is a flag and an environment variable; flags win.
#[derive(Debug, Parser)]
#[command(name = "oms", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `serve` when no subcommand is given.
    #[command(flatten)]
    pub serve: Settings,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up; boxing buys nothing")]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve(Settings),
    /// Print one order's events, oldest first, for audits.
    History {
        /// The order's id.
        order_id: String,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreSettings,
    },
    /// Write every event to standard output as JSON lines, in commit order (an audit
    /// archive).
    Export {
        /// Only events recorded at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreSettings,
    },
    /// Rebuild a read model from the event store: the new table is filled beside the
    /// served one and takes over atomically (safe with the services running); an
    /// interrupted rebuild resumes.
    Rebuild {
        /// The read model.
        #[arg(long, default_value = "order_view", value_parser = ["order_view"])]
        projection: String,
        /// Fold the events into a scratch table and list every row that differs from
        /// the served one, changing nothing; exits with status 1 when rows differ.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreSettings,
    },
    /// List, inspect and re-drive dead letters: consumed messages and committed events
    /// that could never be processed or published as they were, parked with their
    /// reason.
    #[command(subcommand)]
    Dlq(admin::dead_letters::DlqCommand<StoreSettings, KafkaSettings>),
}

/// Where the operator commands find the service's data.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreSettings {
    /// PostgreSQL schema of the service's event store and views.
    #[arg(long, env = "OMS_DATABASE_SCHEMA", default_value = "oms")]
    pub database_schema: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseSettings,
}

/// Settings of the running service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Interface to listen on.
    #[arg(long, env = "OMS_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "OMS_PORT", default_value_t = 8080)]
    pub port: u16,
    /// PostgreSQL schema holding the OMS event store and views (created if missing).
    #[arg(long, env = "OMS_DATABASE_SCHEMA", default_value = "oms")]
    pub database_schema: String,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub database: DatabaseSettings,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub database_sessions: DatabaseSessionSettings,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub lifecycle: LifecycleSettings,
    /// Consumer group of the outcome consumer.
    #[arg(long, env = "OMS_CONSUMER_GROUP", default_value = "oms-outcomes")]
    pub consumer_group: String,
    /// Milliseconds an item may stay PENDING after its order's last change before the
    /// OMS asks the inventory service again (republishing the order event that made it
    /// pending); the delay then doubles per order up to 10 minutes while it stays
    /// pending. 0 turns re-requests off.
    #[arg(long, env = "ORDER_REREQUEST_AFTER_MS", default_value_t = 30_000)]
    pub rerequest_after_ms: u64,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub kafka: KafkaSettings,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub http: HttpSettings,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub telemetry: TelemetrySettings,
}
