//! Operator commands both binaries offer beside `serve`: an aggregate's history for
//! auditors, an export of all events as JSON lines, and rebuilding or verifying a
//! read model from the event store; and the dead letters both services park.
//!
//! # Layout
//! - [`history`]: one aggregate's events as a table or as JSON lines.
//! - [`export`]: every event in commit order as JSON lines, for audit archives.
//! - [`rebuild`]: blue/green rebuild with a progress bar, and verify.
//! - [`dead_letters`]: `dlq list`, `show` and `replay` (the re-driving itself is the
//!   binary's, through `messaging`).
//!
//! Works on the service's database schema through `eventstore` and `projections`;
//! must not depend on `axum` or `rdkafka`.

pub mod dead_letters;
pub mod export;
pub mod history;
pub mod rebuild;

/// A table for people, as every command prints one: `header`, then `rows`, as wide as
/// the terminal allows.
fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table for people.
    #[default]
    Table,
    /// One JSON object per line, for tools.
    Json,
}
