//! The operator commands of the `oms` binary, run as a real process against the
//! database of a running OMS: history, export, rebuild and verify.

use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, order_id, spawn_app};

/// Runs `oms <args>` against `app`'s database.
/// Runs the `oms` binary with `args` against `app`'s database. On a blocking
/// thread: the service under test runs on this test's runtime and must go on
/// serving (and committing) while the command runs, or a rebuild would wait forever
/// for the transaction it left open.
pub(crate) async fn oms(app: &TestApp, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_oms"));
    command
        .args(args)
        .args(["--database-url", &app.database_url, "--database-schema", "oms"])
        .env_remove("DATABASE_URL");
    tokio::task::spawn_blocking(move || command.output()).await.expect("the command's thread").expect("running oms")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

async fn place_and_cancel(app: &TestApp, user: &str) -> String {
    let placed = app.post_order(&json!({"userId": user, "orderItems": [{"productId": "mug", "quantity": 2}, {"productId": "cup", "quantity": 1}]})).await;
    let id = order_id(placed.data(StatusCode::CREATED));
    app.put_order(&id, &json!({"orderItems": [{"productId": "cup", "quantity": 4}]})).await.data(StatusCode::OK);
    app.put_order(&id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK);
    id
}

#[tokio::test]
async fn history_prints_the_events_the_api_shows_as_json_lines_or_a_table() {
    let app = spawn_app().await;
    let id = place_and_cancel(&app, "alice").await;
    let served = app.events(&id).await.data(StatusCode::OK).clone();

    let output = oms(&app, &["history", &id, "--json"]).await;
    assert!(output.status.success(), "{output:?}");
    let printed: Vec<Value> =
        stdout(&output).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    assert_eq!(Value::Array(printed), served, "the CLI prints exactly the audit history of the API");

    let table = stdout(&oms(&app, &["history", &id]).await);
    for expected in ["OrderPlaced", "OrderItemsChanged", "OrderCanceled", "oms-http"] {
        assert!(table.contains(expected), "{expected} missing from\n{table}");
    }
    let unknown = oms(&app, &["history", &uuid::Uuid::new_v4().to_string()]).await;
    assert!(
        !unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("has no events"),
        "{unknown:?}"
    );
}

/// Runs the export `args` until it prints `expected` lines (for at most 30 s) and
/// returns its last run. The export stops where the feed does: behind any older
/// transaction still open anywhere on the server (transaction ids are server-wide), as
/// another test's may be; what it holds back comes once that transaction ends.
async fn export_until(app: &TestApp, args: &[&str], expected: i64) -> Output {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let output = oms(app, args).await;
        assert!(output.status.success(), "{output:?}");
        if stdout(&output).lines().count() as i64 >= expected {
            return output;
        }
        if tokio::time::Instant::now() > deadline {
            // For the failure that follows: the transactions that held the feed back.
            let holders: Vec<(Option<String>,)> = sqlx::query_as(
                "SELECT concat_ws(' ', pid, datname, backend_xid, xact_start, left(query, 120)) FROM pg_stat_activity
                  WHERE backend_xid IS NOT NULL ORDER BY xact_start",
            )
            .fetch_all(&app.pool)
            .await
            .unwrap_or_default();
            eprintln!("the export still held back; transactions with an id on the server: {holders:?}");
            return output;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn export_streams_every_event_in_commit_order_since_a_time() {
    let app = spawn_app().await;
    let before = chrono::Utc::now();
    let first = place_and_cancel(&app, "alice").await;
    let second = place_and_cancel(&app, "bob").await;

    let events = app.count_events().await;
    let output = export_until(&app, &["export"], events).await;
    let lines: Vec<Value> =
        stdout(&output).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    assert_eq!(lines.len() as i64, events, "every event, once");
    let order_of = |id: &str| {
        lines
            .iter()
            .filter(|l| l["aggregateId"] == id)
            .map(|l| l["sequence"].as_i64().expect("sequence"))
            .collect::<Vec<_>>()
    };
    assert_eq!((order_of(&first), order_of(&second)), (vec![1, 2, 3], vec![1, 2, 3]), "each order's events in order");
    assert!(
        lines
            .iter()
            .all(|l| l["eventId"].is_string() && l["correlationId"].is_string() && l["aggregateType"] == "Order")
    );

    let since = async |time: chrono::DateTime<chrono::Utc>, expected: i64| {
        stdout(&export_until(&app, &["export", "--since", &time.to_rfc3339()], expected).await).lines().count()
    };
    assert_eq!(since(before, events).await, lines.len());
    assert_eq!(since(chrono::Utc::now() + chrono::Duration::hours(1), 0).await, 0);
}

#[tokio::test]
async fn rebuild_takes_over_with_the_same_orders_and_verify_finds_what_differs() {
    let app = spawn_app().await;
    let ids = [place_and_cancel(&app, "alice").await, place_and_cancel(&app, "bob").await];
    let before: Vec<Value> = served_orders(&app, &ids).await;

    let verified = oms(&app, &["rebuild", "--verify"]).await;
    assert!(verified.status.success() && stdout(&verified).contains("equals the fold"), "{verified:?}");

    sqlx::query("UPDATE order_view_v1 SET status = 'DELIVERED' WHERE order_id = $1::uuid")
        .bind(&ids[0])
        .execute(&app.pool)
        .await
        .expect("damage");
    let verified = oms(&app, &["rebuild", "--verify"]).await;
    assert_eq!(verified.status.code(), Some(1), "differences exit with status 1: {verified:?}");
    assert!(
        stdout(&verified).contains(&ids[0]) && stdout(&verified).contains("1 rows differ"),
        "{}",
        stdout(&verified)
    );

    let rebuilt = oms(&app, &["rebuild"]).await;
    assert!(rebuilt.status.success() && stdout(&rebuilt).contains("generation 2 is active"), "{rebuilt:?}");
    assert_eq!(served_orders(&app, &ids).await, before, "the service answers from the rebuilt model, repaired");
    assert!(oms(&app, &["rebuild", "--verify"]).await.status.success());
    // The service keeps writing the new generation.
    app.put_order(&ids[1], &json!({"status": "CANCELED"})).await.data(StatusCode::OK);
    let placed = app.post_order(&json!({"userId": "carol", "orderItems": [{"productId": "mug", "quantity": 1}]})).await;
    let id = order_id(placed.data(StatusCode::CREATED));
    app.get_order(&id).await.data(StatusCode::OK);
    assert!(oms(&app, &["rebuild", "--verify"]).await.status.success());
}

async fn served_orders(app: &TestApp, ids: &[String]) -> Vec<Value> {
    let mut orders = Vec::new();
    for id in ids {
        orders.push(app.get_order(id).await.data(StatusCode::OK).clone());
    }
    orders
}
