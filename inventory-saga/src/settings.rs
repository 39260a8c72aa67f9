//! Command line and environment of the `inventory` binary.

use clap::{Parser, Subcommand};
use http_server::{DatabaseSettings, HttpSettings, TelemetrySettings};
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
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve(Settings),
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
