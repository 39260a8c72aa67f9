//! `GET /oms/orders` (filters, keyset pages) and `GET /oms/orders/{id}/events`.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_audit_fields, instant, object_keys, order_id, spawn_app};

/// Walks every page of `query` with `limit`, asserting each page's shape; returns the
/// order ids in the order served and the size of each page.
async fn walk_pages(app: &TestApp, query: &str, limit: usize) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{query}&limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let answer = app.list(&url).await;
        let page = answer.data(StatusCode::OK);
        assert_eq!(object_keys(page), ["items", "nextCursor"], "a page has items and nextCursor");
        let items = page["items"].as_array().expect("items is an array");
        assert!(items.len() <= limit, "page of {url} holds {} items, more than {limit}", items.len());
        sizes.push(items.len());
        ids.extend(items.iter().map(order_id));
        match &page["nextCursor"] {
            Value::Null => break,
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("nextCursor is neither null nor a string: {other}"),
        }
        assert!(sizes.len() <= 20, "paging {query} does not end");
    }
    (ids, sizes)
}

#[tokio::test]
async fn pages_of_a_users_orders_are_newest_first_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let mut alices = Vec::new();
    for n in 1..=7 {
        alices.push(order_id(&app.place_order("alice", &[("mug", n)]).await));
        app.place_order("bob", &[("tea", n)]).await;
    }
    let newest_first: Vec<String> = alices.iter().rev().cloned().collect();

    let (ids, sizes) = walk_pages(&app, "userId=alice", 3).await;

    assert_eq!(sizes, [3, 3, 1], "7 orders in pages of 3; nextCursor null after the last");
    assert_eq!(ids, newest_first, "every one of alice's orders once, newest first, and no one else's");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 7, "no duplicates");
}

#[tokio::test]
async fn a_list_that_fills_its_last_page_exactly_ends_with_a_null_cursor() {
    let app = spawn_app().await;
    let mut placed = Vec::new();
    for n in 1..=4 {
        placed.push(order_id(&app.place_order(&format!("user-{n}"), &[("mug", n)]).await));
    }
    placed.reverse();

    let (ids, sizes) = walk_pages(&app, "", 2).await;
    assert_eq!(sizes, [2, 2]);
    assert_eq!(ids, placed);

    let (ids, sizes) = walk_pages(&app, "", 4).await;
    assert_eq!(sizes, [4], "one full page and no cursor to an empty one");
    assert_eq!(ids, placed);
}

#[tokio::test]
async fn the_list_filters_by_user_and_by_status() {
    let app = spawn_app().await;
    let alice_open = order_id(&app.place_order("alice", &[("mug", 1)]).await);
    let alice_canceled = order_id(&app.place_order("alice", &[("mug", 2)]).await);
    let bob_canceled = order_id(&app.place_order("bob", &[("tea", 1)]).await);
    let bob_open = order_id(&app.place_order("bob", &[("tea", 2)]).await);
    for id in [&alice_canceled, &bob_canceled] {
        app.put_order(id, &json!({"status": "CANCELED"})).await.data(StatusCode::OK);
    }
    let listed = |answer: crate::helpers::Answer| -> Vec<(String, String, String)> {
        let page = answer.data(StatusCode::OK).clone();
        assert_eq!(page["nextCursor"], Value::Null);
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| {
                (
                    order_id(o),
                    o["userId"].as_str().expect("userId").to_owned(),
                    o["status"].as_str().expect("status").to_owned(),
                )
            })
            .collect()
    };
    let row = |id: &str, user: &str, status: &str| (id.to_owned(), user.to_owned(), status.to_owned());

    assert_eq!(
        listed(app.list("").await),
        [
            row(&bob_open, "bob", "PENDING"),
            row(&bob_canceled, "bob", "CANCELED"),
            row(&alice_canceled, "alice", "CANCELED"),
            row(&alice_open, "alice", "PENDING")
        ],
        "no filter: every order, newest first"
    );
    assert_eq!(
        listed(app.list("userId=alice").await),
        [row(&alice_canceled, "alice", "CANCELED"), row(&alice_open, "alice", "PENDING")]
    );
    assert_eq!(
        listed(app.list("status=CANCELED").await),
        [row(&bob_canceled, "bob", "CANCELED"), row(&alice_canceled, "alice", "CANCELED")]
    );
    assert_eq!(listed(app.list("userId=bob&status=PENDING").await), [row(&bob_open, "bob", "PENDING")]);
    assert_eq!(listed(app.list("userId=carol").await), [], "an unknown user has no orders, not an error");
    assert_eq!(listed(app.list("status=DELIVERED").await), []);
}

#[tokio::test]
async fn listed_orders_are_the_orders_get_returns() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("alice", &[("mug", 1), ("tea", 2)]).await);
    app.put_order(&id, &json!({"orderItems": [{"productId": "tea", "status": "CANCELED"}]})).await.data(StatusCode::OK);

    let page = app.list("userId=alice").await.data(StatusCode::OK).clone();

    assert_eq!(page["items"], json!([app.get_order(&id).await.data(StatusCode::OK)]));
}

#[tokio::test]
async fn the_history_lists_every_event_oldest_first_with_its_metadata() {
    let app = spawn_app().await;
    let placed = app
        .post_order_with(
            &json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]}),
            &[("x-correlation-id", "checkout-42"), ("x-request-id", "req-place")],
        )
        .await
        .data(StatusCode::CREATED)
        .clone();
    let id = order_id(&placed);
    app.put_order_with(
        &id,
        &json!({"orderItems": [{"productId": "tea", "quantity": 3}]}),
        &[("x-correlation-id", "checkout-42"), ("x-request-id", "req-add")],
    )
    .await
    .data(StatusCode::OK);
    app.put_order_with(&id, &json!({"status": "CANCELED"}), &[("x-request-id", "req-cancel")])
        .await
        .data(StatusCode::OK);

    let history = app.assert_history_explains_order(&id).await;

    assert_eq!(history.len(), 3);
    for event in &history {
        assert_audit_fields(event);
        let version = match event["eventType"].as_str() {
            Some("OrderPlaced" | "OrderStatusChanged" | "OrderCanceled") => "2.0",
            _ => "1.0",
        };
        assert_eq!(event["eventVersion"], version, "each event type has its own version: {event}");
    }
    let summary: Vec<(i64, &str, &str, &str)> = history
        .iter()
        .map(|e| {
            (
                e["sequence"].as_i64().expect("sequence"),
                e["eventType"].as_str().expect("eventType"),
                e["correlationId"].as_str().expect("correlationId"),
                e["causationId"].as_str().expect("causationId"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "OrderPlaced", "checkout-42", "req-place"),
            (2, "OrderItemsChanged", "checkout-42", "req-add"),
            // Without x-correlation-id a request starts its own correlation.
            (3, "OrderCanceled", "req-cancel", "req-cancel"),
        ],
        "oldest first; the client's x-correlation-id is the correlationId, the request id the causationId"
    );
    assert_eq!(
        history[0]["payload"],
        json!({"userId": "alice", "items": [{"productId": "mug", "quantity": 2}], "idempotencyKey": null})
    );
    assert_eq!(history[1]["payload"], json!({"items": [{"productId": "tea", "quantity": 3, "status": "PENDING"}]}));
    assert_eq!(history[2]["payload"], json!({"items": ["mug", "tea"], "reason": "CANCELED_BY_CUSTOMER"}));
    assert_eq!(
        instant(history[0]["occurredAt"].as_str().expect("occurredAt")),
        instant(placed["createdAt"].as_str().expect("createdAt")),
        "the order was created when its first event occurred"
    );
    let distinct_ids: HashSet<&str> = history.iter().map(|e| e["eventId"].as_str().expect("eventId")).collect();
    assert_eq!(distinct_ids.len(), 3, "event ids are unique");
}
