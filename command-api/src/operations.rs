//! The operator commands of the `oms` binary: history, export, rebuild.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use domain::OrderId;
use projections::OrderViews;
use sqlx::PgPool;

use crate::orders::{Orders, OrdersError};
use crate::settings::{Command, StoreSettings};

async fn connect(store: &StoreSettings) -> anyhow::Result<PgPool> {
    migrations::connect_and_migrate(store.database.url.expose(), &store.database_schema, 4, &migrations::OMS).await
}

/// Runs an operator command (anything but `serve`), writing to standard output.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Serve(_) => anyhow::bail!("serve is not an operator command"),
        Command::History { order_id, json, store } => {
            let id: OrderId = order_id.parse().map_err(|_| anyhow::anyhow!("'{order_id}' is not an order id (a UUID)"))?;
            let orders = Orders::new(connect(&store).await?);
            match orders.history(id).await {
                Ok(events) => admin::history::print(&events, if json { admin::Format::Json } else { admin::Format::Table }, &mut out)?,
                Err(OrdersError::NotFound) => anyhow::bail!("order {order_id} has no events"),
                Err(other) => return Err(other).context("reading the order's history"),
            }
        }
        Command::Export { since, store } => {
            let written = admin::export::export(&connect(&store).await?, since, &mut out).await?;
            eprintln!("exported {written} events");
        }
        Command::Rebuild { projection: _, verify, store } => {
            let pool = connect(&store).await?;
            let orders = Orders::new(pool.clone());
            if verify {
                let clean = admin::rebuild::verify::<OrderViews>(&pool, orders.events(), &mut out).await?;
                out.flush()?;
                return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            admin::rebuild::rebuild::<OrderViews>(&pool, orders.events(), &mut out).await?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
