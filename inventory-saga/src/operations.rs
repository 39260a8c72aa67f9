//! The inventory service's part of the operator commands (`service_kit::operations`
//! runs them): how a product's history is found, the view to rebuild, the route to
//! re-drive on, and the rebuild of `product_reservations`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use domain::ProductId;
use domain::inventory::Product;
use eventstore::Events;
use messaging::KafkaSettings;
use projections::ProductViews;
use sqlx::PgPool;

use crate::publishing::ProductEventsRoute;
use crate::settings::Inventory;

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
