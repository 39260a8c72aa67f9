//! The inventory service's part of the operator commands (`service_kit::operations`
//! runs them): how a product's history is found, the view to rebuild, the route to
//! re-drive on, the rebuild of `product_reservations`, and its own command,
//! `ship-held`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use domain::inventory::Product;
use domain::{OrderId, ProductId};
use eventstore::{EventMetadata, Events};
use messaging::KafkaSettings;
use projections::ProductViews;
use service_kit::{OwnCommands, StoreSettings};
use sqlx::PgPool;

use crate::products::Products;
use crate::publishing::ProductEventsRoute;
use crate::settings::Inventory;

/// Orders `ship-held` reads and ships at a time (one transaction each).
const SHIP_HELD_BATCH: usize = 200;

/// Who `ship-held`'s events say shipped.
const SHIP_HELD_ACTOR: &str = "inventory ship-held";

impl service_kit::Operated for Inventory {
    type Views = ProductViews;
    type Route = ProductEventsRoute;

    fn migrations() -> &'static sqlx::migrate::Migrator {
        &migrations::INVENTORY
    }

    fn events() -> Events<Product> {
        Events::default()
    }

    fn aggregate_id(id: &str) -> anyhow::Result<String> {
        let product_id =
            ProductId::parse(id.to_owned()).map_err(|e| anyhow::anyhow!("'{id}' is not a product id: {e}"))?;
        Ok(product_id.as_str().to_owned())
    }

    fn route(kafka: &KafkaSettings) -> ProductEventsRoute {
        ProductEventsRoute {
            outcomes_topic: kafka.topics.order_outcomes.clone(),
            alerts_topic: kafka.topics.stock_alerts.clone(),
        }
    }

    async fn rebuild_other(
        pool: &PgPool,
        projection: &str,
        verify: bool,
        out: &mut (dyn Write + Send),
    ) -> Option<anyhow::Result<ExitCode>> {
        (projection == "product_reservations").then_some(())?;
        Some(rebuild_reservations(pool, verify, out).await)
    }
}

/// `rebuild --projection product_reservations [--verify]`.
async fn rebuild_reservations(pool: &PgPool, verify: bool, out: &mut (dyn Write + Send)) -> anyhow::Result<ExitCode> {
    if verify {
        let differences = crate::reservations::differences(pool)
            .await
            .context("comparing product_reservations with the fold of the events")?;
        for (stored, folded) in &differences {
            writeln!(out, "stored {stored:?}, folded from the events {folded:?}")?;
        }
        if differences.is_empty() {
            writeln!(out, "product_reservations: equals the fold of the event store")?;
        } else {
            writeln!(out, "product_reservations: {} rows differ", differences.len())?;
        }
        return Ok(if differences.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let rows = crate::reservations::rebuild(pool).await.context("rebuilding product_reservations")?;
    writeln!(out, "product_reservations: {rows} rows folded from the event store; product snapshots dropped")?;
    Ok(ExitCode::SUCCESS)
}

/// The inventory service's own operator commands.
#[derive(Debug, clap::Subcommand)]
pub enum InventoryCommands {
    /// Ship whatever orders still hold: their reserved units leave `reserved` and
    /// `onHand` and count in `shipped`.
    ///
    /// For orders shipped by an OMS that did not yet name the products a shipment
    /// consumes (`OrderStatusChanged` 1.0) and consumed by an inventory service that did
    /// not yet ship such orders: their units stay reserved. Give only orders the OMS
    /// shows `SHIPPED` or `DELIVERED`; every one of them is safe to give, since an order
    /// that holds nothing (shipped already, or canceled) is left as it is, and running
    /// it again ships nothing more. Prints each product shipped per order, then a
    /// summary.
    ShipHeld {
        /// The orders (UUIDs); `-` reads them from standard input, separated by
        /// whitespace.
        #[arg(required = true, value_name = "ORDER_ID")]
        orders: Vec<String>,
        /// Print what each order holds, shipping nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreSettings,
    },
}

impl OwnCommands for InventoryCommands {
    async fn run(self, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
        match self {
            Self::ShipHeld { orders, dry_run, store } => {
                let orders = order_ids(&orders, std::io::stdin().lock())?;
                let pool = service_kit::operations::connect::<Inventory>(&store).await?;
                ship_held(&Products::new(pool), &orders, dry_run, out).await
            }
        }
    }
}

/// The order ids of `ship-held`'s arguments, `-` standing for those `input` lists, each
/// once, in the order given; an error naming the first that is not an order id.
fn order_ids(arguments: &[String], input: impl BufRead) -> anyhow::Result<Vec<OrderId>> {
    let mut given: Vec<String> = Vec::new();
    let mut input = Some(input);
    for argument in arguments {
        if argument != "-" {
            given.push(argument.clone());
        } else if let Some(input) = input.take() {
            for line in input.lines() {
                given.extend(
                    line.context("reading order ids from standard input")?.split_whitespace().map(str::to_owned),
                );
            }
        }
    }
    // A set beside the list: every shipped order of a shop may be piped in.
    let mut seen: std::collections::HashSet<OrderId> = std::collections::HashSet::with_capacity(given.len());
    let mut orders: Vec<OrderId> = Vec::with_capacity(given.len());
    for id in given {
        let order_id: OrderId = id.parse().map_err(|_| anyhow::anyhow!("'{id}' is not an order id (a UUID)"))?;
        if seen.insert(order_id) {
            orders.push(order_id);
        }
    }
    Ok(orders)
}

/// `ship-held`: ships (or with `dry_run`, lists) what each of `orders` holds, a batch
/// of orders per transaction.
async fn ship_held(
    products: &Products,
    orders: &[OrderId],
    dry_run: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let correlation_id = format!("ship-held-{}", uuid::Uuid::new_v4().simple());
    let metadata = EventMetadata::new(correlation_id.as_str(), correlation_id.as_str(), SHIP_HELD_ACTOR);
    let (mut units, mut shipped_orders) = (0_u64, 0_usize);
    for batch in orders.chunks(SHIP_HELD_BATCH) {
        let lines: Vec<(OrderId, String, u32)> = if dry_run {
            let held = products.held(batch).await.context("reading what the orders hold")?;
            held.into_iter()
                .map(|h| (OrderId::from(h.order_id), h.product_id, u32::try_from(h.quantity).unwrap_or(u32::MAX)))
                .collect()
        } else {
            let shipped = products.ship_held(batch, &metadata).await.context("shipping what the orders hold")?;
            shipped.into_iter().map(|s| (s.order_id, s.product_id, s.quantity)).collect()
        };
        let verb = if dry_run { "holds" } else { "shipped" };
        for order_id in batch {
            let of_order: Vec<&(OrderId, String, u32)> = lines.iter().filter(|(o, ..)| o == order_id).collect();
            if of_order.is_empty() {
                writeln!(out, "{order_id}  holds nothing")?;
            }
            for (_, product_id, quantity) in &of_order {
                writeln!(out, "{order_id}  {product_id}  {verb} {quantity}")?;
                units += u64::from(*quantity);
            }
            shipped_orders += usize::from(!of_order.is_empty());
        }
    }
    let summary = if dry_run { "would ship" } else { "shipped" };
    writeln!(out, "{summary} {units} units for {shipped_orders} of {} orders; the others hold nothing", orders.len())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_come_from_the_arguments_and_from_standard_input_for_a_dash() {
        let (a, b, c) = (OrderId::generate(), OrderId::generate(), OrderId::generate());
        let arguments = [a.to_string(), "-".to_owned(), a.to_string()];
        let input = format!("{b}\n\n  {c} {b}\n");
        assert_eq!(order_ids(&arguments, input.as_bytes()).expect("ids"), [a, b, c], "each once, in the order given");
        assert_eq!(order_ids(&[c.to_string()], "ignored".as_bytes()).expect("ids"), [c], "input read only for -");
        let refused = order_ids(&[a.to_string(), "-".to_owned()], "order-7".as_bytes()).expect_err("not a UUID");
        assert_eq!(refused.to_string(), "'order-7' is not an order id (a UUID)");
    }
}
