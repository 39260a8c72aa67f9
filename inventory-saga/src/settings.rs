//! Command line and environment of the `inventory` binary.

use clap::{Parser, Subcommand};
use http_server::{DatabaseSessionSettings, DatabaseSettings, HttpSettings, LifecycleSettings, TelemetrySettings};
use messaging::KafkaSettings;

/// The inventory service: products and stock, event-sourced in PostgreSQL; reserves
/// stock for orders and publishes stock alerts.
///
/// Every setting is a flag and an environment variable; flags win.
#[derive(Debug, Parser)]
#[command(name = "inventory", version, args_conflicts_with_subcommands = true)]
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
    /// Print one product's events, oldest first, for audits.
    History {
        /// The product's id.
        product_id: String,
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
    /// interrupted rebuild resumes. `--projection product_reservations` rebuilds the
    /// products' per-order rows (and drops their snapshots) in one transaction that
    /// holds the saga's commits back meanwhile.
    Rebuild {
        /// The read model, or `product_reservations`.
        #[arg(long, default_value = "product_view", value_parser = ["product_view", "product_reservations"])]
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
    #[arg(long, env = "INVENTORY_DATABASE_SCHEMA", default_value = "inventory")]
    pub database_schema: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseSettings,
}

/// Settings of the running service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Interface to listen on.
    #[arg(long, env = "INVENTORY_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "INVENTORY_PORT", default_value_t = 8081)]
    pub port: u16,
    /// PostgreSQL schema holding the inventory event store and views (created if missing).
    #[arg(long, env = "INVENTORY_DATABASE_SCHEMA", default_value = "inventory")]
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
    /// Consumer group of the reservation saga; instances sharing it split partitions.
    #[arg(long, env = "INVENTORY_CONSUMER_GROUP", default_value = "inventory-saga")]
    pub consumer_group: String,
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
