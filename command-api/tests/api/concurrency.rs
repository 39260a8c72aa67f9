//! Many writers on one order at once: no 5xx, every answer 200 or 409, and the events
//! account for exactly the 200s (no lost update, no phantom write).

use std::collections::{BTreeMap, HashMap};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, order_id, spawn_app};

/// The message of a 409 when the retry budget for optimistic-lock conflicts ran out.
const KEPT_CHANGING: &str = "kept changing concurrently";

/// Events by the request that caused them (`causationId` is the request id).
fn by_cause(history: &[Value]) -> HashMap<String, Vec<Value>> {
    let mut causes: HashMap<String, Vec<Value>> = HashMap::new();
    for event in history {
        let cause = event["causationId"].as_str().expect("causationId").to_owned();
        causes.entry(cause).or_default().push(event.clone());
    }
    causes
}

fn assert_no_server_error(answers: &[(String, Answer)]) {
    for (request_id, answer) in answers {
        assert!(
            answer.status == StatusCode::OK || answer.status == StatusCode::CONFLICT,
            "[{request_id}] every answer is 200 or 409, got {}: {}",
            answer.status,
            answer.body
        );
    }
}

#[tokio::test]
async fn fifty_concurrent_cancels_and_item_changes_lose_no_update() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("p-0", 1)]).await);
    // Every fifth request cancels the order; the others each add their own product.
    let requests: Vec<(String, Value)> = (1..=50u32)
        .map(|i| {
            let body = if i % 5 == 0 {
                json!({"status": "CANCELED"})
            } else {
                json!({"orderItems": [{"productId": format!("p-{i}"), "quantity": i}]})
            };
            (format!("req-{i}"), body)
        })
        .collect();

    let (app, id) = (&app, id.as_str());
    let answers: Vec<(String, Answer)> = join_all(requests.iter().map(|(request_id, body)| async move {
        (request_id.clone(), app.put_order_with(id, body, &[("x-request-id", request_id)]).await)
    }))
    .await;

    assert_no_server_error(&answers);
    let final_order = app.get_order(id).await.data(StatusCode::OK).clone();
    let history = app.assert_history_explains_order(id).await;
    let causes = by_cause(&history);
    let version = final_order["version"].as_u64().expect("version");
    assert_eq!(app.count_events().await as u64, version, "the event count equals the final version");
    assert_eq!(history.len() as u64, version);

    let mut cancel_sequences = Vec::new();
    let mut item_sequences = BTreeMap::new();
    for ((request_id, answer), (_, body)) in answers.iter().zip(&requests) {
        let events = causes.get(request_id).cloned().unwrap_or_default();
        let is_cancel = body.get("status").is_some();
        if answer.status == StatusCode::CONFLICT {
            let message = answer.error(StatusCode::CONFLICT, request_id);
            let expected: &[&str] = if is_cancel {
                &[KEPT_CHANGING]
            } else {
                &[KEPT_CHANGING, "items of a CANCELED order can no longer change"]
            };
            assert!(expected.iter().any(|m| message.contains(m)), "[{request_id}] unexpected conflict: {message}");
            assert_eq!(events, Vec::<Value>::new(), "[{request_id}] a 409 left events behind");
            continue;
        }
        let answered = answer.data(StatusCode::OK);
        let answered_version = answered["version"].as_u64().expect("version");
        if is_cancel {
            // The first cancellation records OrderCanceled; the others find it canceled.
            assert!(events.len() <= 1, "[{request_id}] one cancellation, one event at most: {events:?}");
            if let Some(event) = events.first() {
                assert_eq!(event["eventType"], "OrderCanceled", "[{request_id}]");
                cancel_sequences.push(event["sequence"].as_u64().expect("sequence"));
            }
            assert_eq!(answered["status"], "CANCELED", "[{request_id}] a 200 to a cancellation shows it canceled");
            assert_eq!(answered_version, version, "[{request_id}] nothing can follow a cancellation");
        } else {
            let product = &body["orderItems"][0]["productId"];
            assert_eq!(events.len(), 1, "[{request_id}] a 200 item change is exactly one event: {events:?}");
            assert_eq!(events[0]["eventType"], "OrderItemsChanged", "[{request_id}]");
            assert_eq!(
                events[0]["payload"]["items"],
                json!([{"productId": product, "quantity": body["orderItems"][0]["quantity"], "status": "PENDING"}])
            );
            let sequence = events[0]["sequence"].as_u64().expect("sequence");
            assert!(
                answered_version >= sequence,
                "[{request_id}] the answer (version {answered_version}) must include the change it committed (sequence {sequence})"
            );
            assert!(
                answered["orderItems"].as_array().expect("items").iter().any(|item| &item["productId"] == product),
                "[{request_id}] the answer shows its own item: {answered}"
            );
            item_sequences.insert(sequence, request_id.clone());
        }
    }

    assert_eq!(cancel_sequences.len(), 1, "exactly one OrderCanceled, from a 200 cancellation");
    let canceled_at = cancel_sequences[0];
    assert_eq!(canceled_at, version, "the cancellation is the last event");
    assert_eq!(
        item_sequences.keys().copied().collect::<Vec<_>>(),
        (2..canceled_at).collect::<Vec<_>>(),
        "each 200 item change committed one version, in a gap-free sequence before the cancellation"
    );
    assert_eq!(final_order["status"], "CANCELED");
    let products: Vec<&str> = final_order["orderItems"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["productId"].as_str().expect("productId"))
        .collect();
    assert_eq!(
        products.len() as u64,
        1 + item_sequences.len() as u64,
        "the order holds p-0 and the 200 item changes, nothing else"
    );
    for item in final_order["orderItems"].as_array().expect("items") {
        assert_eq!(item["status"], "CANCELED", "every item of a canceled order is canceled: {item}");
        assert_eq!(item["reason"], "CANCELED_BY_CUSTOMER");
    }
}

#[tokio::test]
async fn fifty_concurrent_new_items_on_one_order_all_land_or_answer_a_conflict() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("p-0", 1)]).await);
    let requests: Vec<(String, u32)> = (1..=50u32).map(|i| (format!("p-{i}"), i)).collect();

    let (app, id) = (&app, id.as_str());
    let answers: Vec<(String, Answer)> = join_all(requests.iter().map(|(product, quantity)| async move {
        let body = json!({"orderItems": [{"productId": product, "quantity": quantity}]});
        (product.clone(), app.put_order(id, &body).await)
    }))
    .await;

    assert_no_server_error(&answers);
    let final_order = app.get_order(id).await.data(StatusCode::OK).clone();
    app.assert_history_explains_order(id).await;
    let items: HashMap<String, Value> = final_order["orderItems"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| (item["productId"].as_str().expect("productId").to_owned(), item.clone()))
        .collect();
    let mut landed = 0;
    for ((product, answer), (_, quantity)) in answers.iter().zip(&requests) {
        if answer.status == StatusCode::OK {
            landed += 1;
            let answered = answer.data(StatusCode::OK);
            assert!(
                answered["orderItems"].as_array().expect("items").iter().any(|i| i["productId"] == *product),
                "[{product}] the answer shows the new item"
            );
            assert_eq!(
                items.get(product),
                Some(&json!({"productId": product, "quantity": quantity, "status": "PENDING", "reason": null})),
                "[{product}] a 200 item is in the final order"
            );
        } else {
            let message = answer.error(StatusCode::CONFLICT, product);
            assert!(
                message.contains(KEPT_CHANGING),
                "[{product}] only conflict exhaustion may refuse an addition: {message}"
            );
            assert!(!items.contains_key(product), "[{product}] a 409 item must not be in the order");
        }
    }
    assert_eq!(items.len(), 1 + landed, "p-0 plus every 200, nothing else");
    assert_eq!(final_order["version"], json!(1 + landed), "one event per 200");
    assert_eq!(app.count_events().await, 1 + landed as i64);
}
