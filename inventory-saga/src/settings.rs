//! Command line and environment of the `inventory` binary: the kit's command line
//! (`service_kit::cli`) with the inventory service's identity.

use service_kit::{Identity, Named, ServiceSettings};

use crate::operations::InventoryCommands;

/// The inventory service, as the service kit knows it: its names and defaults here,
/// its part of the operator commands and its own ([`InventoryCommands`]) in
/// `operations`.
#[derive(Debug)]
pub struct Inventory;

impl Named for Inventory {
    const IDENTITY: Identity = Identity {
        binary: "inventory",
        title: "the inventory service",
        about: "The inventory service: products and stock, event-sourced in PostgreSQL; reserves stock for \
                orders and publishes stock alerts.\n\n\
                Every setting is a flag and an environment variable; flags win.",
        env_prefix: "INVENTORY",
        port: 8081,
        schema: "inventory",
        consumer_group: "inventory-saga",
        consumer_group_help: "Consumer group of the reservation saga; instances sharing it split partitions.",
        aggregate: "product",
        rebuilds: &["product_view", "product_reservations"],
        rebuild_note: "`--projection product_reservations` rebuilds the products' per-order rows (and drops \
                       their snapshots) in one transaction that holds the saga's commits back meanwhile.",
    };
}

/// The `inventory` command line.
pub type Cli = service_kit::Cli<Settings, Inventory, InventoryCommands>;

/// What `inventory` runs.
pub type Command = service_kit::Command<Settings, InventoryCommands>;

/// Settings of the running service: the kit's, none of its own yet.
pub type Settings = ServiceSettings;
