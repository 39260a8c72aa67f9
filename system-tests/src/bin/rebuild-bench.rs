//! `rebuild-bench`: how fast a read model rebuilds from the event store. Not a test:
//! a benchmark whose figures go to `docs/benchmarks.md`.
//!
//! It fills a fresh database with `--orders` orders played out through the OMS's own
//! event store (placement, two outcomes, then a resize, a cancellation or a payment:
//! four events each, on average), then rebuilds the order view and verifies it,
//! printing events/s for each.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use command_api::orders::Orders;
use domain::order::{
    ItemOutcome, ItemUpdate, Order, OrderCommand, OrderLine, PlaceOrder, RecordItemOutcome, TargetStatus, UpdateOrder,
};
use domain::{OrderId, ProductId, Quantity, UserId};
use eventstore::{AggregateStore, Command, EventMetadata};
use projections::OrderViews;

#[derive(Debug, Parser)]
#[command(
    name = "rebuild-bench",
    about = "Fills an event store with orders and times rebuilding and verifying the order view"
)]
struct Args {
    /// Orders to write (about four events each).
    #[arg(long, default_value_t = 250_000)]
    orders: usize,
    /// Commands per write transaction while filling.
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    /// Keep the filled database (for a look at it) instead of dropping it at the end.
    #[arg(long)]
    keep_database: bool,
}

fn product(i: usize) -> ProductId {
    ProductId::parse(format!("p-{}", i % 97)).unwrap_or_else(|_| unreachable!("a valid product id"))
}

fn units(n: u32) -> Quantity {
    Quantity::new(n.max(1).into()).unwrap_or_else(|_| unreachable!("1 to 7 units"))
}

fn commands(i: usize, id: &str) -> Vec<Command<Order>> {
    let metadata = EventMetadata::new(format!("bench-{i}"), format!("bench-{i}"), "rebuild-bench");
    let command = |command| Command { aggregate_id: id.to_owned(), command, metadata: metadata.clone() };
    let outcome = |p, outcome| {
        OrderCommand::RecordItemOutcome(RecordItemOutcome { product_id: product(p), revision: 1, outcome })
    };
    let mut commands = vec![
        command(OrderCommand::PlaceOrder(PlaceOrder {
            user_id: UserId::parse(format!("user-{}", i % 1000)).unwrap_or_else(|_| unreachable!("a valid user id")),
            idempotency_key: None,
            items: vec![
                OrderLine { product_id: product(i), quantity: units(1 + (i % 3) as u32) },
                OrderLine { product_id: product(i + 1), quantity: units(2) },
            ],
        })),
        command(outcome(i, ItemOutcome::Executed)),
        command(outcome(i + 1, ItemOutcome::Executed)),
    ];
    commands.push(command(match i % 3 {
        0 => OrderCommand::UpdateOrder(UpdateOrder { items: vec![], status: Some(TargetStatus::Canceled) }),
        1 => OrderCommand::UpdateOrder(UpdateOrder {
            items: vec![ItemUpdate::SetQuantity { product_id: product(i), quantity: units(7) }],
            status: None,
        }),
        _ => OrderCommand::UpdateOrder(UpdateOrder { items: vec![], status: Some(TargetStatus::Paid) }),
    }));
    commands
}

// mimalloc (see the allocator crate).
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = migrations::testing::create_database().await?;
    println!("database: {url}");
    let measured = measure(&args, &url).await;
    // A filled database takes about a gigabyte: dropped however the run ended.
    if args.keep_database {
        println!("kept the database");
    } else {
        migrations::testing::drop_database(&url).await?;
    }
    measured
}

async fn measure(args: &Args, url: &str) -> anyhow::Result<()> {
    let pool = migrations::connect_and_migrate(url, "oms", 8, &migrations::OMS).await?;

    // Filled without the inline view, so the rebuild has everything to do.
    let started = Instant::now();
    let store = AggregateStore::<Order>::new(pool.clone());
    let per_order = 4;
    for first in (0..args.orders).step_by((args.batch / per_order).max(1)) {
        let last = (first + args.batch / per_order).min(args.orders);
        let batch: Vec<Command<Order>> =
            (first..last).flat_map(|i| commands(i, &OrderId::generate().to_string())).collect();
        let results = store.execute_all(&batch).await.context("writing orders")?;
        anyhow::ensure!(results.iter().all(Result::is_ok), "a command was refused");
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await?;
    println!("wrote {events} events ({} orders) in {:.1} s", args.orders, started.elapsed().as_secs_f64());

    let orders = Orders::new(pool.clone());
    let started = Instant::now();
    let rebuilt = projections::rebuild::rebuild::<OrderViews>(&pool, orders.events(), |_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuild: {} events in {seconds:.2} s = {:.0} events/s (generation {})",
        rebuilt.events,
        rebuilt.events as f64 / seconds,
        rebuilt.generation
    );

    let started = Instant::now();
    let differences = projections::rebuild::verify::<OrderViews>(&pool, orders.events(), |_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "verify: {events} events folded and compared in {seconds:.2} s = {:.0} events/s, {} differences",
        events as f64 / seconds,
        differences.len()
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM order_view").fetch_one(&pool).await?;
    println!("order_view rows: {rows}");
    pool.close().await;
    Ok(())
}
