//! Many writers on one product: no lost update, no doubled update, no
//! 5xx, and the read model always agrees with the history.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Answer, TestApp, event_types, fold_history, spawn_app};

/// How the answers of a burst of writes split by status.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcomes {
    ok: usize,
    /// Concurrent writers kept winning until the retry budget ran out.
    conflict: usize,
}

fn tally(answers: &[Answer]) -> Outcomes {
    let mut outcomes = Outcomes::default();
    for answer in answers {
        match answer.status {
            StatusCode::OK => {
                answer.data(StatusCode::OK);
                outcomes.ok += 1;
            }
            StatusCode::CONFLICT => {
                let message = answer.error(StatusCode::CONFLICT, "retry budget exhausted");
                assert!(message.contains("concurrently"), "a conflict says why: {message}");
                outcomes.conflict += 1;
            }
            other => panic!("a concurrent restock answered {other}: {}", answer.body),
        }
    }
    outcomes
}

/// Fires `writers` restocks of one unit of `product_id` at once.
async fn concurrent_restocks(app: &TestApp, product_id: &str, writers: usize) -> Vec<Answer> {
    join_all((0..writers).map(|_| app.restock(product_id, 1))).await
}

/// Asserts that after a burst that started from `initial` units and one event, exactly
/// the successful restocks are in the product, its history and the store.
async fn assert_every_success_counted_once(app: &TestApp, product_id: &str, initial: u64, outcomes: &Outcomes) {
    let product = app.get_product(product_id).await.data(StatusCode::OK).clone();
    let history = app.history(product_id).await;
    let restocks = event_types(&history).iter().filter(|t| **t == "StockRestocked").count();
    assert_eq!(restocks, outcomes.ok, "one StockRestocked per 200, no more, no less ({outcomes:?})");
    assert_eq!(product["available"], initial + outcomes.ok as u64, "no lost and no doubled update ({outcomes:?})");
    assert_eq!(product["version"], history.len(), "the version counts every event");
    assert_eq!(app.count_events().await as usize, history.len());
    let sequences: Vec<u64> = history.iter().map(|e| e["sequence"].as_u64().expect("sequence")).collect();
    assert_eq!(sequences, (1..=history.len() as u64).collect::<Vec<_>>(), "sequences have no gap");
    assert_eq!(fold_history(product_id, &history), product, "folding /events gives GET");
}

#[tokio::test]
async fn fifty_concurrent_restocks_of_one_unit_lose_no_update() {
    let app = spawn_app().await;
    app.given_product("hot", 100, 10).await;

    let answers = concurrent_restocks(&app, "hot", 50).await;

    let outcomes = tally(&answers);
    assert_eq!(outcomes.ok + outcomes.conflict, 50);
    assert!(outcomes.ok >= 1, "some restock must win: {outcomes:?}");
    eprintln!("50 concurrent restocks: {outcomes:?}");
    assert_every_success_counted_once(&app, "hot", 100, &outcomes).await;
    for answer in answers.iter().filter(|a| a.status == StatusCode::OK) {
        let available = answer.body["data"]["available"].as_u64().expect("available");
        assert!((101..=150).contains(&available), "a 200 shows at least its own unit: {available}");
    }
}

/// Regression: with postgres-es snapshots a restock could be stored twice (postgres-es
/// 0.5 commits the events, then reports a conflict when the snapshot row moved on, and
/// the command was retried). Products are now purely event-sourced.
#[tokio::test]
async fn bursts_of_concurrent_restocks_are_each_stored_once() {
    let app = spawn_app().await;
    app.given_product("hot", 100, 10).await;

    let mut total = Outcomes::default();
    for _ in 0..4 {
        let outcomes = tally(&concurrent_restocks(&app, "hot", 25).await);
        total.ok += outcomes.ok;
        total.conflict += outcomes.conflict;
    }

    assert_eq!(total.ok + total.conflict, 100);
    assert_every_success_counted_once(&app, "hot", 100, &total).await;
}

#[tokio::test]
async fn thirty_sequential_restocks_agree_with_history() {
    let app = spawn_app().await;
    app.given_product("p-1", 0, 20).await;

    let mut last = json!(null);
    for i in 1..=30 {
        last = app.restock("p-1", i).await.data(StatusCode::OK).clone();
    }

    let product = app.get_product("p-1").await.data(StatusCode::OK).clone();
    let history = app.history("p-1").await;
    assert_eq!(product, last, "GET reads the last restock's write");
    assert_eq!(product["available"], (1..=30).sum::<u64>());
    // Out of stock, then the first restock (1 unit, low) is back in stock; the running
    // total passes the threshold of 20 at the sixth restock (21), low to in stock: no alert.
    assert_eq!(event_types(&history[..4]), ["ProductAdded", "OutOfStock", "StockRestocked", "BackInStock"]);
    assert_eq!(history.len(), 2 + 30 + 1);
    assert_eq!(product["version"], history.len(), "version equals the number of events");
    assert_eq!(fold_history("p-1", &history), product);
    // One more write loads the whole history and must continue the sequence.
    let after = app.restock("p-1", 1).await.data(StatusCode::OK).clone();
    assert_eq!((after["available"].clone(), after["version"].clone()), (json!(466), json!(34)));
}

#[tokio::test]
async fn adding_the_same_product_concurrently_creates_it_once() {
    let app = spawn_app().await;

    let bodies: Vec<_> =
        (0..10).map(|i| json!({"productId": "p-1", "name": format!("Mug {i}"), "quantity": i})).collect();
    let answers = join_all(bodies.iter().map(|body| app.add_product(body))).await;

    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    assert_eq!(created.len(), 1, "exactly one add wins: {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    for answer in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        assert_eq!(answer.error(StatusCode::CONFLICT, "lost the race"), "product 'p-1' already exists");
    }
    let winner = created[0].data(StatusCode::CREATED).clone();
    assert_eq!(*app.get_product("p-1").await.data(StatusCode::OK), winner);
    assert_eq!(event_types(&app.history("p-1").await)[0], "ProductAdded");
    assert_eq!(
        app.count_events().await,
        winner["version"].as_i64().expect("version"),
        "only the winner's events are stored"
    );
}

#[tokio::test]
async fn concurrent_restocks_of_different_products_do_not_interfere() {
    let app = spawn_app().await;
    let ids: Vec<String> = (0..10).map(|i| format!("p-{i}")).collect();
    for id in &ids {
        app.given_product(id, 50, 5).await;
    }

    let answers =
        join_all(ids.iter().flat_map(|id| (1..=3).map(move |q| (id, q))).map(|(id, q)| app.restock(id, q))).await;

    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for id in &ids {
        let product = app.get_product(id).await.data(StatusCode::OK).clone();
        assert_eq!((product["available"].clone(), product["version"].clone()), (json!(56), json!(4)), "{id}");
    }
}
