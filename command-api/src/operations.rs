//! The operator commands of the `oms` binary: history, export, rebuild, dlq.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use domain::OrderId;
use projections::OrderViews;
use sqlx::PgPool;

use crate::orders::{Orders, OrdersError};
use crate::settings::{Command, StoreSettings};
use admin::dead_letters::{DlqCommand, Failed, Parked, Selection};
use messaging::KafkaSettings;
use messaging::redrive::Redriver;

async fn connect(store: &StoreSettings) -> anyhow::Result<PgPool> {
    // No statement timeout: a rebuild or an export over the whole history may rightly
    // run long statements.
    let sessions = migrations::Sessions::default().without_statement_timeout();
    migrations::connect_and_migrate_with(
        store.database.url.expose(),
        &store.database_schema,
        4,
        &sessions,
        &migrations::OMS,
    )
    .await
}

/// Runs an operator command (anything but `serve`), writing to standard output.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Serve(_) => anyhow::bail!("serve is not an operator command"),
        Command::History { order_id, json, store } => {
            let id: OrderId =
                order_id.parse().map_err(|_| anyhow::anyhow!("'{order_id}' is not an order id (a UUID)"))?;
            let orders = Orders::new(connect(&store).await?);
            match orders.history(id).await {
                Ok(events) => admin::history::print(
                    &events,
                    if json { admin::Format::Json } else { admin::Format::Table },
                    &mut out,
                )?,
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
        Command::Dlq(command) => return dlq(command, &mut out).await,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `dlq list|show|replay`; status 1 when a replay left failures.
async fn dlq(command: DlqCommand<StoreSettings, KafkaSettings>, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let format = |json: bool| if json { admin::Format::Json } else { admin::Format::Table };
    match command {
        DlqCommand::List { filter, all, json, store } => {
            let selection = Selection { filter, include_replayed: all, ids: vec![] };
            admin::dead_letters::list(&connect(&store).await?, &selection, format(json), out).await?;
        }
        DlqCommand::Show { id, json, store } => {
            admin::dead_letters::show(&connect(&store).await?, id, format(json), out).await?
        }
        DlqCommand::Replay { filter, ids, dry_run, again, store, kafka } => {
            let pool = connect(&store).await?;
            let selection = Selection { filter, include_replayed: again, ids };
            let kafka = kafka.with_env_properties(std::env::vars());
            let redriver = Redriver::new(&kafka)?;
            if !dry_run {
                redriver.check_broker().await.context("nothing was replayed")?;
            }
            let route = crate::publishing::OrderEventsRoute { topic: kafka.topics.order_events.clone() };
            let replayed =
                admin::dead_letters::replay(&pool, &selection, dry_run, out, async |id, parked| match parked {
                    Parked::Message { topic, key, payload, headers } => {
                        redriver.produce(id, &topic, key.as_deref(), payload.as_deref(), &headers).await.map_err(failed)
                    }
                    Parked::Event { topic, event } => {
                        redriver.republish(id, &route, &event, &topic).await.map(drop).map_err(failed)
                    }
                })
                .await?;
            out.flush()?;
            return Ok(if replayed.complete() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A re-drive's failure: an outage of the broker stops the replay, anything else
/// fails only that dead letter.
fn failed(error: anyhow::Error) -> Failed {
    if Redriver::is_outage(&error) { Failed::All(error) } else { Failed::This(error) }
}
