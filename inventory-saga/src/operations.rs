//! The operator commands of the `inventory` binary: history, export, rebuild.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use domain::ProductId;
use projections::ProductViews;
use sqlx::PgPool;

use crate::products::{Products, ProductsError};
use crate::settings::{Command, StoreSettings};

async fn connect(store: &StoreSettings) -> anyhow::Result<PgPool> {
    migrations::connect_and_migrate(store.database.url.expose(), &store.database_schema, 4, &migrations::INVENTORY).await
}

/// Runs an operator command (anything but `serve`), writing to standard output.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Serve(_) => anyhow::bail!("serve is not an operator command"),
        Command::History { product_id, json, store } => {
            let id = ProductId::parse(product_id.clone()).map_err(|e| anyhow::anyhow!("'{product_id}' is not a product id: {e}"))?;
            let products = Products::new(connect(&store).await?);
            match products.history(&id).await {
                Ok(events) => admin::history::print(&events, if json { admin::Format::Json } else { admin::Format::Table }, &mut out)?,
                Err(ProductsError::NotFound) => anyhow::bail!("product {product_id} has no events"),
                Err(other) => return Err(other).context("reading the product's history"),
            }
        }
        Command::Export { since, store } => {
            let written = admin::export::export(&connect(&store).await?, since, &mut out).await?;
            eprintln!("exported {written} events");
        }
        Command::Rebuild { projection: _, verify, store } => {
            let pool = connect(&store).await?;
            let products = Products::new(pool.clone());
            if verify {
                let clean = admin::rebuild::verify::<ProductViews>(&pool, products.events(), &mut out).await?;
                out.flush()?;
                return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            admin::rebuild::rebuild::<ProductViews>(&pool, products.events(), &mut out).await?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
