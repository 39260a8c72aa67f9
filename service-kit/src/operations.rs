//! The operator commands of both binaries: `history`, `export`, `rebuild` and `dlq`,
//! and a service's own ([`OwnCommands`]), run once against the service's schema,
//! writing to standard output.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use eventstore::{Aggregate, Events, load_history};
use messaging::redrive::Redriver;
use messaging::{KafkaSettings, Route};
use projections::{View, ViewTable};
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::cli::{Command, OwnCommands, StoreSettings};
use admin::dead_letters::{DlqCommand, Failed, Parked, Selection};

/// Events `history` reads and prints at a time.
const HISTORY_PAGE: i64 = 1000;

/// The aggregate a read model folds.
pub type AggregateOf<T> = <<T as ViewTable>::View as View>::Aggregate;

/// What the operator commands need of a service.
pub trait Operated {
    /// The read model `rebuild` rebuilds by default.
    type Views: ViewTable;
    /// How the service's relay routes its events (`dlq replay` of a parked event).
    type Route: Route;

    /// The migrations of the service's schema.
    fn migrations() -> &'static Migrator;

    /// How the service reads its events (with the upcasters of old versions).
    fn events() -> Events<AggregateOf<Self::Views>>;

    /// The id of one of the service's aggregates as stored, from `id` as an operator
    /// wrote it; an error that says why when it is not one.
    fn aggregate_id(id: &str) -> anyhow::Result<String>;

    /// The relay's route, on the configured topics.
    fn route(kafka: &KafkaSettings) -> Self::Route;

    /// Rebuilds (or with `verify`, compares) `projection` when it is one of the
    /// service's own that is not a view; `None` for a view.
    fn rebuild_other(
        pool: &PgPool,
        projection: &str,
        verify: bool,
        out: &mut (dyn Write + Send),
    ) -> impl Future<Output = Option<anyhow::Result<ExitCode>>> + Send {
        let _ = (pool, projection, verify, out);
        async { None }
    }
}

/// A pool on the service's schema as `store` names it, migrated, for an operator
/// command (a service's own ones too).
pub async fn connect<S: Operated>(store: &StoreSettings) -> anyhow::Result<PgPool> {
    // No statement timeout: a rebuild or an export over the whole history may rightly
    // run long statements.
    let sessions = migrations::Sessions::default().without_statement_timeout();
    migrations::connect_and_migrate_with(
        store.database.url.expose(),
        &store.database_schema,
        4,
        &sessions,
        S::migrations(),
    )
    .await
}

/// Runs an operator command (anything but `serve`).
pub async fn run<S: Operated, A: clap::Args, X: OwnCommands>(command: Command<A, X>) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Serve(_) => anyhow::bail!("serve is not an operator command"),
        Command::Own(own) => {
            let exit = own.run(&mut out).await;
            out.flush()?;
            return exit;
        }
        Command::History { id, json, store } => {
            // A page at a time: a history of any length in constant memory (a table
            // is printed a page at a time too).
            let aggregate_id = S::aggregate_id(&id)?;
            let pool = connect::<S>(&store).await?;
            let aggregate_type = <AggregateOf<S::Views> as Aggregate>::TYPE;
            let mut from = Some(1);
            while let Some(first) = from {
                let page = load_history(&pool, aggregate_type, &aggregate_id, first, HISTORY_PAGE)
                    .await
                    .context("reading the history")?
                    .with_context(|| format!("{} {id} has no events", aggregate_type.to_lowercase()))?;
                admin::history::print(&page.events, format(json), &mut out)?;
                from = page.next_from;
            }
        }
        Command::Export { since, store } => {
            let written = admin::export::export(&connect::<S>(&store).await?, since, &mut out).await?;
            eprintln!("exported {written} events");
        }
        Command::Rebuild { projection, verify, store } => {
            let pool = connect::<S>(&store).await?;
            // Its output is short; buffered because standard output's lock cannot
            // cross the await of a `Send` future.
            let mut buffered = Vec::new();
            let other = S::rebuild_other(&pool, &projection, verify, &mut buffered).await;
            out.write_all(&buffered)?;
            if let Some(exit) = other {
                out.flush()?;
                return exit;
            }
            let events = S::events();
            if verify {
                let clean = admin::rebuild::verify::<S::Views>(&pool, &events, &mut out).await?;
                out.flush()?;
                return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            admin::rebuild::rebuild::<S::Views>(&pool, &events, &mut out).await?;
        }
        Command::Dlq(command) => return dlq::<S>(command, &mut out).await,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn format(json: bool) -> admin::Format {
    if json { admin::Format::Json } else { admin::Format::Table }
}

/// `dlq list|show|replay`; status 1 when a replay left failures.
async fn dlq<S: Operated>(
    command: DlqCommand<StoreSettings, KafkaSettings>,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List { filter, all, json, store } => {
            let selection = Selection { filter, include_replayed: all, ids: vec![] };
            admin::dead_letters::list(&connect::<S>(&store).await?, &selection, format(json), out).await?;
        }
        DlqCommand::Show { id, json, store } => {
            admin::dead_letters::show(&connect::<S>(&store).await?, id, format(json), out).await?
        }
        DlqCommand::Replay { filter, ids, dry_run, again, store, kafka } => {
            let pool = connect::<S>(&store).await?;
            let selection = Selection { filter, include_replayed: again, ids };
            let kafka = kafka.with_env_properties(std::env::vars());
            let redriver = Redriver::new(&kafka)?;
            if !dry_run {
                redriver.check_broker().await.context("nothing was replayed")?;
            }
            let route = S::route(&kafka);
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
