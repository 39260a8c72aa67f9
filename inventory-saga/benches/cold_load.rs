//! `cold_load`: what loading a product that served a million orders costs the
//! inventory service when it is not in the store's cache (a restart, another instance,
//! an evicted product). Not a test: a benchmark whose figures go to
//! `docs/benchmarks.md`.
//!
//! It writes, in a database of its own, one product with `--orders` orders' history the
//! way the service stores it (a `ProductAdded`, then one `StockReserved` per order; the
//! product's per-order rows; a snapshot `--after-snapshot` events before the end, the
//! worst the store leaves), in bulk SQL, then measures with stores just started (empty
//! cache): a load, a redelivered reservation of an old order (decides nothing) and a
//! new order's reservation (commits), and the loaded state's size. For comparison it
//! also loads the product as the service did before (folding every event, every order
//! in memory), unless `--skip-full-fold`; and it times a one-row primary-key select on
//! the same server as a reference for the machine's speed. `--without-snapshot` writes
//! no snapshot, as for a history older than snapshots, and times the first cold load
//! (which folds every event and leaves one) on its own.
//!
//!   cargo bench -p inventory-saga --bench cold_load -- --orders 1000000

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use domain::inventory::{AddProduct, Product, ProductCommand, ProductEvent, ProductName};
use domain::{OrderId, Quantity};
use eventstore::{Aggregate, AggregateStore, Command, EventMetadata};
use inventory_saga::products::{Products, SNAPSHOT_EVERY};
use projections::{ProductViews, Projector};
use sqlx::PgPool;

#[derive(Debug, Parser)]
#[command(name = "cold_load", about = "Times a cold load of a product with a long history")]
struct Args {
    /// Orders in the product's history (one reservation event each).
    #[arg(long, default_value_t = 1_000_000)]
    orders: u64,
    /// Events after the snapshot (the store snapshots every 500, so at most 499).
    #[arg(long, default_value_t = SNAPSHOT_EVERY - 1)]
    after_snapshot: u64,
    /// Write no snapshot, as for a history written before snapshots: the first cold load
    /// folds every event (and leaves a snapshot), timed on its own.
    #[arg(long)]
    without_snapshot: bool,
    /// Cold loads timed (each on a store just started).
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Skip loading the product as the service did before (every event folded).
    #[arg(long)]
    skip_full_fold: bool,
    /// Warm batches timed per store in the comparison after the full fold (0: none).
    #[arg(long, default_value_t = 100)]
    warm_batches: usize,
    /// Reservations per warm batch (the saga commits one batch per consumed poll).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Keep the database at the end.
    #[arg(long)]
    keep_database: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const PRODUCT: &str = "hot";
const INITIAL_STOCK: u32 = 100_000_000;

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn summary(mut times: Vec<Duration>) -> String {
    let first = times[0];
    times.sort();
    let median = times[times.len() / 2];
    format!(
        "median {}, min {}, max {} ({} runs; the first {})",
        millis(median),
        millis(times[0]),
        millis(times[times.len() - 1]),
        times.len(),
        millis(first)
    )
}

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The id of the `n`th order of the history, as the bulk insert makes it.
async fn order_id(pool: &PgPool, n: u64) -> anyhow::Result<OrderId> {
    let id: uuid::Uuid = sqlx::query_scalar("SELECT md5('order-' || $1)::uuid").bind(n as i64).fetch_one(pool).await?;
    Ok(OrderId::from(id))
}

async fn fill(pool: &PgPool, args: &Args) -> anyhow::Result<()> {
    let metadata = EventMetadata::new("cold-load-bench", "cold-load-bench", "inventory-saga");
    let add = ProductCommand::AddProduct(AddProduct {
        name: ProductName::parse("Hot mug").context("a name")?,
        initial_stock: INITIAL_STOCK,
        low_stock_threshold: 10,
    });
    Products::new(pool.clone())
        .execute(&PRODUCT.parse().context("a product id")?, add, &metadata)
        .await
        .context("adding the product")?;
    let metadata = serde_json::to_value(metadata.to_map())?;
    let started = Instant::now();
    // One StockReserved per order, as `decide` writes it, sequences 2 to orders + 1.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'Product', $1, g + 1, 'StockReserved', '1.0',
                jsonb_build_object('StockReserved', jsonb_build_object('orderId', md5('order-' || g)::uuid, 'quantity', 1, 'reservedForOrder', 1, 'revision', 1)),
                $2
           FROM generate_series(1, $3::bigint) g",
    )
    .bind(PRODUCT)
    .bind(&metadata)
    .bind(args.orders as i64)
    .execute(pool)
    .await
    .context("writing the events")?;
    sqlx::query(
        "INSERT INTO product_reservations (product_id, order_id, quantity, revision, announced_sequence)
         SELECT $1, md5('order-' || g)::uuid, 1, 1, g + 1 FROM generate_series(1, $2::bigint) g",
    )
    .bind(PRODUCT)
    .bind(args.orders as i64)
    .execute(pool)
    .await
    .context("writing the per-order rows")?;
    // The view as the projection left it (else the next commit refolds it from the history).
    let version = args.orders as i64 + 1;
    sqlx::query(
        "UPDATE product_view SET available = available - $2, reserved = $2, version = $3 WHERE product_id = $1",
    )
    .bind(PRODUCT)
    .bind(args.orders as i64)
    .bind(version)
    .execute(pool)
    .await
    .context("bringing the view up to date")?;
    if args.without_snapshot {
        sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
        println!(
            "filled: {} orders, {} events, no snapshot, in {:.1} s",
            args.orders,
            version,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    // The snapshot the store would hold: the product folded up to its version, without
    // its orders (folded here event by event, the orders dropped as they come).
    let snapshot_version = (args.orders + 1).saturating_sub(args.after_snapshot).max(1);
    let mut product = Product::default();
    product.apply(ProductEvent::ProductAdded {
        name: ProductName::parse("Hot mug").context("a name")?,
        initial_stock: INITIAL_STOCK,
        low_stock_threshold: 10,
    });
    for n in 1..snapshot_version {
        let order_id = OrderId::from(uuid::Uuid::from_u128(u128::from(n)));
        product.apply(ProductEvent::StockReserved {
            order_id,
            quantity: 1,
            reserved_for_order: Quantity::new(1).context("one")?,
            revision: 1,
        });
        if n % 10_000 == 0 {
            product.forget_orders();
        }
    }
    product.forget_orders();
    sqlx::query("INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, version, without_state, state) VALUES ('Product', $1, $2, 'product_reservations', $3)")
        .bind(PRODUCT)
        .bind(snapshot_version as i64)
        .bind(serde_json::to_value(&product)?)
        .execute(pool)
        .await
        .context("writing the snapshot")?;
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    sqlx::query("VACUUM ANALYZE product_reservations").execute(pool).await?;
    println!(
        "filled: {} orders, {} events, snapshot at version {snapshot_version} ({} events after it), in {:.1} s",
        args.orders,
        version,
        version as u64 - snapshot_version,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn measure(pool: &PgPool, args: &Args) -> anyhow::Result<()> {
    // Reference: a one-row primary-key select, one connection, one client.
    let mut reference = Vec::new();
    let mut connection = pool.acquire().await?;
    for _ in 0..2_000 {
        let started = Instant::now();
        sqlx::query(
            "SELECT order_id FROM product_reservations WHERE product_id = $1 AND order_id = md5('order-1')::uuid",
        )
        .bind(PRODUCT)
        .fetch_optional(&mut *connection)
        .await?;
        reference.push(started.elapsed());
    }
    drop(connection);
    println!("reference, primary-key select of one row: {}", summary(reference));

    if args.without_snapshot {
        let before = resident_bytes();
        let started = Instant::now();
        let (product, version) = Products::store(pool.clone()).load(PRODUCT).await?;
        let elapsed = started.elapsed();
        let snapshot: Option<i64> =
            sqlx::query_scalar("SELECT version FROM aggregate_snapshots WHERE aggregate_id = $1")
                .bind(PRODUCT)
                .fetch_optional(pool)
                .await?;
        println!(
            "first cold load without a snapshot (every event folded): {} for version {version}, orders held {}, resident memory grew {} MB, snapshot left at version {snapshot:?}",
            millis(elapsed),
            product.orders_held(),
            resident_bytes().saturating_sub(before) / 1_000_000
        );
    }
    let mut loads = Vec::new();
    let mut loaded = None;
    let resident_before = resident_bytes();
    for _ in 0..args.rounds {
        let store = Products::store(pool.clone());
        let started = Instant::now();
        let state = store.load(PRODUCT).await?;
        loads.push(started.elapsed());
        loaded = Some(state);
    }
    let (product, version) = loaded.context("no round")?;
    println!("cold load (snapshot + events after it): {}", summary(loads));
    println!(
        "resident memory grew {} kB over those cold loads",
        resident_bytes().saturating_sub(resident_before) / 1024
    );
    let serialized = serde_json::to_vec(&product)?.len();
    println!(
        "loaded state: version {version}, reserved {}, orders held {}, serialized {serialized} bytes, in memory {} bytes inline + {} bytes of name",
        product.reserved(),
        product.orders_held(),
        std::mem::size_of::<Product>(),
        product.name().map_or(0, |n| n.as_str().len())
    );

    let metadata = EventMetadata::new("cold-load-bench", "cold-load-bench", "inventory-saga");
    let (mut redeliveries, mut reservations) = (Vec::new(), Vec::new());
    for round in 0..args.rounds as u64 {
        let old = order_id(pool, 1 + round * 7_919 % args.orders.max(1)).await?;
        let store = Products::store(pool.clone());
        let started = Instant::now();
        let committed = store
            .execute(
                PRODUCT,
                ProductCommand::ReserveStock { order_id: old, quantity: Quantity::new(1)?, revision: 1 },
                &metadata,
            )
            .await?;
        redeliveries.push(started.elapsed());
        anyhow::ensure!(committed.events.is_empty(), "a redelivered reservation decided {:?}", committed.events);

        let store = Products::store(pool.clone());
        let started = Instant::now();
        let committed = store
            .execute(
                PRODUCT,
                ProductCommand::ReserveStock {
                    order_id: OrderId::generate(),
                    quantity: Quantity::new(2)?,
                    revision: 1,
                },
                &metadata,
            )
            .await?;
        reservations.push(started.elapsed());
        anyhow::ensure!(
            matches!(committed.events.first().map(|e| &e.payload), Some(ProductEvent::StockReserved { .. })),
            "a new order's reservation reserves"
        );
    }
    println!("cold store, redelivered reservation of an old order (decides nothing): {}", summary(redeliveries));
    println!("cold store, a new order's reservation (load, decide, commit): {}", summary(reservations));

    if !args.skip_full_fold {
        let before = resident_bytes();
        let store = AggregateStore::<Product>::new(pool.clone()).with_projection(Projector::<ProductViews>::live());
        let started = Instant::now();
        let (full, version) = store.load(PRODUCT).await?;
        let elapsed = started.elapsed();
        let grown = resident_bytes().saturating_sub(before);
        let serialized = serde_json::to_vec(&full)?.len();
        println!(
            "before this change, a full fold (every event, every order in memory): {} for version {version}, orders held {}, serialized {serialized} bytes, resident memory grew {} MB",
            millis(elapsed),
            full.orders_held(),
            grown / 1_000_000
        );
        warm_batches(pool, &store, args).await?;
    }
    Ok(())
}

/// Warm stores, turn about: batches of `--batch` new orders' reservations through the
/// service's store (rows read and written, snapshots) and through `previous` (every
/// order in memory, as before), both keeping the view, on the same product.
async fn warm_batches(pool: &PgPool, previous: &AggregateStore<Product>, args: &Args) -> anyhow::Result<()> {
    if args.warm_batches == 0 {
        return Ok(());
    }
    let metadata = EventMetadata::new("cold-load-bench", "cold-load-bench", "inventory-saga");
    let batch = || -> anyhow::Result<Vec<Command<Product>>> {
        (0..args.batch)
            .map(|_| {
                let command = ProductCommand::ReserveStock {
                    order_id: OrderId::generate(),
                    quantity: Quantity::new(1)?,
                    revision: 1,
                };
                Ok(Command { aggregate_id: PRODUCT.to_owned(), command, metadata: metadata.clone() })
            })
            .collect()
    };
    let current = Products::store(pool.clone());
    current.load(PRODUCT).await?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..args.warm_batches {
        for (store, times) in [(&current, &mut ours), (previous, &mut theirs)] {
            let commands = batch()?;
            let started = Instant::now();
            let results = store.execute_all(&commands).await?;
            times.push(started.elapsed());
            anyhow::ensure!(
                results.iter().all(|r| r.as_ref().is_ok_and(|c| !c.events.is_empty())),
                "every reservation commits"
            );
        }
    }
    println!("warm batch of {} new orders' reservations, this design: {}", args.batch, summary(ours));
    println!(
        "warm batch of {} new orders' reservations, every order in memory (before): {}",
        args.batch,
        summary(theirs)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = migrations::testing::create_database()
        .await
        .context("creating the bench database (TEST_DATABASE_URL or DATABASE_URL)")?;
    let outcome = async {
        let pool = migrations::connect_and_migrate(&url, "inventory", 4, &migrations::INVENTORY).await?;
        fill(&pool, &args).await?;
        measure(&pool, &args).await?;
        pool.close().await;
        anyhow::Ok(())
    }
    .await;
    if args.keep_database {
        println!("database kept: {url}");
    } else {
        migrations::testing::drop_database(&url).await?;
    }
    outcome
}
