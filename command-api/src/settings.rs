//! Command line and environment of the `oms` binary: the kit's command line
//! (`service_kit::cli`) with the OMS's identity and its one setting of its own.

use service_kit::{Identity, Named, ServeSettings, ServiceSettings};

/// The OMS, as the service kit knows it: its names and defaults here, its operator
/// commands in `operations`.
#[derive(Debug)]
pub struct Oms;

impl Named for Oms {
    const IDENTITY: Identity = Identity {
        binary: "oms",
        title: "the order management service",
        about: "The Order Management Service: REST commands and queries on orders, event-sourced in PostgreSQL.\n\n\
                Every setting is a flag and an environment variable; flags win.",
        env_prefix: "OMS",
        port: 8080,
        schema: "oms",
        consumer_group: "oms-outcomes",
        consumer_group_help: "Consumer group of the outcome consumer.",
        aggregate: "order",
        rebuilds: &["order_view"],
        rebuild_note: "",
    };
}

/// The `oms` command line.
pub type Cli = service_kit::Cli<Settings, Oms>;

/// What `oms` runs.
pub type Command = service_kit::Command<Settings>;

/// Settings of the running service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub service: ServiceSettings,
    /// Milliseconds an item may stay PENDING after its order's last change before the
    /// OMS asks the inventory service again (republishing the order event that made it
    /// pending); the delay then doubles per order up to 10 minutes while it stays
    /// pending. 0 turns re-requests off.
    #[arg(long, env = "ORDER_REREQUEST_AFTER_MS", default_value_t = 30_000)]
    pub rerequest_after_ms: u64,
    /// Milliseconds a resolved order (EXECUTED or PARTIALLY_EXECUTED) may wait for
    /// payment after its resolution; an order not PAID by then is canceled, its items
    /// CANCELED for PAYMENT_TIMEOUT and their stock released. Canceling some of its
    /// items does not restart the wait; a changed quantity, which makes the order
    /// PENDING again, does once it resolves again. 0 turns the deadline off.
    #[arg(long, env = "ORDER_PAYMENT_TIMEOUT_MS", default_value_t = 1_800_000)]
    pub payment_timeout_ms: u64,
}

impl ServeSettings for Settings {
    fn service(&mut self) -> &mut ServiceSettings {
        &mut self.service
    }
}
