//! `loadgen`: drives orders against a running system and reports throughput and
//! latency. Not a test: a benchmark whose figures go to `docs/benchmarks.md`.
//!
//! It seeds products, places `--orders` orders from `--concurrency` workers (or at a
//! fixed `--rate`), then waits until every order is resolved. POST latency is measured
//! by the client; end-to-end latency (POST accepted → last item resolved) from the
//! order's own timestamps (`updatedAt - createdAt`), so polling does not distort it.
//! A run longer than two minutes (a soak: `--rate 250 --orders 150000`) also reports
//! each minute apart, so that a slow-down over time shows.
//!
//! Each order is placed as a careful client places it: with an `Idempotency-Key` of
//! its own, retried with backoff (the same key) while the OMS answers 503 or not at
//! all, for up to a minute, so that a run can go through a dependency's restart. Its
//! POST latency is counted from the first try; the retries are reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use clap::Parser;
use futures::StreamExt;
use reqwest::StatusCode;
use system_tests::Api;

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Drives orders against a running system and reports throughput and latency")]
struct Args {
    /// OMS base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    oms: String,
    /// Inventory base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    inventory: String,
    /// Orders to place.
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Place orders at this many per second instead of as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Products to seed.
    #[arg(long, default_value_t = 50)]
    products: usize,
    /// Units of each product.
    #[arg(long, default_value_t = 100_000)]
    stock: u32,
    /// Share of orders that go to the first product (a hot product).
    #[arg(long, default_value_t = 0.2)]
    hot_share: f64,
    /// Give up waiting for resolution after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis_between(created: &str, updated: &str) -> Option<f64> {
    let created = micros(created)?;
    let updated = micros(updated)?;
    Some((updated - created) as f64 / 1000.0)
}

/// Microseconds since the epoch of an RFC 3339 time.
fn micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_micros())
}

/// Why one try to place an order failed.
#[derive(Debug, thiserror::Error)]
enum Try {
    /// The OMS answered 503 or not at all: worth another try.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Any other answer.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// Places an order under `key`, retrying while the OMS is unavailable; counts retries.
async fn place(
    api: &Api,
    key: &str,
    user: &str,
    lines: &[(&str, u32)],
    retries: &AtomicUsize,
) -> anyhow::Result<serde_json::Value> {
    let attempt = || async {
        match api.post_order_with_key(user, lines, key).await {
            // 200: a retry whose first try had placed the order after all.
            Ok((StatusCode::CREATED | StatusCode::OK, body)) => Ok(body["data"].clone()),
            Ok((StatusCode::SERVICE_UNAVAILABLE, body)) => Err(Try::Transient(anyhow::anyhow!("503: {body}"))),
            Ok((status, body)) => Err(Try::Failed(anyhow::anyhow!("{status}: {body}"))),
            Err(error) => Err(Try::Transient(error)),
        }
    };
    let backoff = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_total_delay(Some(Duration::from_secs(60)))
        .without_max_times();
    attempt
        .retry(backoff)
        .when(|error| matches!(error, Try::Transient(_)))
        .notify(|_, _| {
            retries.fetch_add(1, Ordering::Relaxed);
        })
        .await
        .with_context(|| format!("placing order {key}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let api = Arc::new(Api::new(&args.oms, &args.inventory));
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let products: Vec<String> = (0..args.products).map(|i| format!("bench-{run}-{i}")).collect();
    for product in &products {
        api.add_product(product, args.stock, 10).await.with_context(|| format!("seeding {product}"))?;
    }
    println!("seeded {} products with {} units each", products.len(), args.stock);

    let started = Instant::now();
    let interval = args.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let retries = AtomicUsize::new(0);
    let placed: Vec<Placed> = futures::stream::iter(0..args.orders)
        .map(|i| {
            let api = api.clone();
            let products = &products;
            let hot_share = args.hot_share;
            let retries = &retries;
            async move {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(started + interval * i as u32)).await;
                }
                // Deterministic skew: every 1/hot_share-th order goes to the hot product.
                let hot = hot_share > 0.0 && (i as f64 * hot_share).fract() + hot_share >= 1.0;
                let product = if hot { &products[0] } else { &products[1 + i % (products.len() - 1).max(1)] };
                let second = &products[(i * 7 + 3) % products.len()];
                let lines: Vec<(&str, u32)> =
                    if second != product { vec![(product, 1), (second, 2)] } else { vec![(product, 1)] };
                let t0 = Instant::now();
                let order =
                    place(&api, &format!("loadgen-{run}-{i}"), &format!("user-{}", i % 100), &lines, retries).await?;
                Ok::<_, anyhow::Error>(Placed {
                    order_id: order["orderId"].as_str().unwrap_or_default().to_owned(),
                    post_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    minute: (t0 - started).as_secs() / 60,
                })
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let post_elapsed = started.elapsed().as_secs_f64();

    let deadline = Duration::from_secs(args.timeout_secs);
    let resolved: Vec<serde_json::Value> = futures::stream::iter(placed.iter())
        .map(|placed| {
            let api = api.clone();
            async move { api.resolved_order(&placed.order_id, deadline).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let all_resolved = started.elapsed().as_secs_f64();

    let mut post: Vec<f64> = placed.iter().map(|p| p.post_ms).collect();
    post.sort_by(f64::total_cmp);
    let mut e2e: Vec<f64> =
        resolved.iter().filter_map(|o| millis_between(o["createdAt"].as_str()?, o["updatedAt"].as_str()?)).collect();
    e2e.sort_by(f64::total_cmp);
    let last_resolution = resolved.iter().filter_map(|o| micros(o["updatedAt"].as_str()?)).max();
    let first_creation = resolved.iter().filter_map(|o| micros(o["createdAt"].as_str()?)).min();
    let pipeline_secs = match (first_creation, last_resolution) {
        (Some(first), Some(last)) => (last - first) as f64 / 1e6,
        _ => f64::NAN,
    };
    let statuses = resolved.iter().fold(std::collections::BTreeMap::new(), |mut counts, o| {
        *counts.entry(o["status"].as_str().unwrap_or("?").to_owned()).or_insert(0) += 1;
        counts
    });

    println!(
        "orders: {}  concurrency: {}  rate: {}",
        args.orders,
        args.concurrency,
        args.rate.map_or("max".to_owned(), |r| format!("{r}/s"))
    );
    println!(
        "POST: {:.0} orders/s  p50 {:.2} ms  p99 {:.2} ms  max {:.1} ms",
        args.orders as f64 / post_elapsed,
        percentile(&post, 0.5),
        percentile(&post, 0.99),
        percentile(&post, 1.0)
    );
    println!("POST retries (503 or no answer, same Idempotency-Key): {}", retries.load(Ordering::Relaxed));
    println!(
        "end to end (POST accepted -> every item resolved): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(&e2e, 0.5),
        percentile(&e2e, 0.99),
        percentile(&e2e, 1.0)
    );
    println!(
        "resolved throughput: {:.0} orders/s (first accepted -> last resolved: {:.2} s; client saw all resolved after {:.2} s)",
        args.orders as f64 / pipeline_secs,
        pipeline_secs,
        all_resolved
    );
    // Issue 15's measure: 1.0 when resolution keeps pace with acceptance, lower when a
    // backlog builds up behind the POSTs.
    println!("resolved / accepted throughput: {:.2}", post_elapsed / pipeline_secs);
    println!("final statuses: {statuses:?}");
    report_minutes(&placed);
    Ok(())
}

/// One accepted placement.
struct Placed {
    order_id: String,
    /// How long the POST took.
    post_ms: f64,
    /// The minute of the run it started in.
    minute: u64,
}

/// POST latency per minute of a run of at least two minutes, and how the last full
/// minute compares with the first (issue 15: p99 in the last minute no worse than
/// twice the first).
fn report_minutes(placed: &[Placed]) {
    let mut minutes: std::collections::BTreeMap<u64, Vec<f64>> = std::collections::BTreeMap::new();
    for p in placed {
        minutes.entry(p.minute).or_default().push(p.post_ms);
    }
    let p99_by_minute: Vec<f64> = minutes
        .values_mut()
        .map(|ms| {
            ms.sort_by(f64::total_cmp);
            percentile(ms, 0.99)
        })
        .collect();
    if p99_by_minute.len() < 3 {
        return;
    }
    println!("POST per minute of the run:");
    for (minute, ms) in &minutes {
        println!(
            "  minute {:>2}: {:>6} orders  p50 {:>6.1} ms  p99 {:>6.1} ms",
            minute + 1,
            ms.len(),
            percentile(ms, 0.5),
            percentile(ms, 0.99)
        );
    }
    // The run's last minute is usually partial: the last full one is the one before.
    let (first, last) = (p99_by_minute[0], p99_by_minute[p99_by_minute.len() - 2]);
    println!("POST p99, last full minute / first: {:.2} ({last:.1} / {first:.1} ms)", last / first);
}
