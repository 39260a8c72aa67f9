//! Command line and environment of the `oms` binary.

use clap::{Parser, Subcommand};
use http_server::{DatabaseSettings, HttpSettings, TelemetrySettings};
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
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve(Settings),
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
    /// Consumer group of the outcome consumer.
    #[arg(long, env = "OMS_CONSUMER_GROUP", default_value = "oms-outcomes")]
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
