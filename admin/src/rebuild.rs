//! `rebuild` and `rebuild --verify` for people at a terminal: a progress bar, the
//! rate, and the differences found.

use std::io::Write;

use eventstore::Events;
use indicatif::{ProgressBar, ProgressStyle};
use projections::rebuild::{self, Progress};
use projections::{View, ViewTable};
use sqlx::PgPool;

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn advance(bar: &ProgressBar) -> impl FnMut(Progress) + '_ {
    |progress: Progress| {
        bar.set_length(progress.total);
        bar.set_position(progress.events);
    }
}

/// Rebuilds model `T` (resuming an interrupted rebuild) and reports to `out`.
pub async fn rebuild<T: ViewTable>(
    pool: &PgPool,
    events: &Events<<T::View as View>::Aggregate>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let bar = bar();
    let rebuilt = rebuild::rebuild::<T>(pool, events, advance(&bar)).await;
    bar.finish_and_clear();
    let rebuilt = rebuilt?;
    let seconds = rebuilt.elapsed.as_secs_f64();
    writeln!(
        out,
        "{}: generation {} is active; {}{} events in {seconds:.1} s ({:.0} events/s)",
        T::MODEL,
        rebuilt.generation,
        if rebuilt.resumed { "resumed, " } else { "" },
        rebuilt.events,
        rebuilt.events as f64 / seconds.max(1e-9),
    )?;
    Ok(())
}

/// Folds model `T` into a scratch table and reports every row that differs from the
/// active table; `Ok(false)` when there are differences.
pub async fn verify<T: ViewTable>(
    pool: &PgPool,
    events: &Events<<T::View as View>::Aggregate>,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let bar = bar();
    let differences = rebuild::verify::<T>(pool, events, advance(&bar)).await;
    bar.finish_and_clear();
    let differences = differences?;
    if differences.is_empty() {
        writeln!(out, "{}: the active table equals the fold of the event store", T::MODEL)?;
        return Ok(true);
    }
    let show = |row: &Option<serde_json::Value>| {
        row.as_ref().map_or_else(|| "(none)".to_owned(), serde_json::Value::to_string)
    };
    let table = crate::table(
        [T::KEY, "served", "from the events"],
        differences
            .iter()
            .map(|difference| [difference.key.clone(), show(&difference.live), show(&difference.rebuilt)]),
    );
    writeln!(out, "{table}\n{}: {} rows differ", T::MODEL, differences.len())?;
    Ok(false)
}
