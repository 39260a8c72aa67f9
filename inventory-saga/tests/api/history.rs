//! `GET /inventory/products/{id}/events`: the audit history, its metadata, the stock
//! alerts it records, and that it explains the product's `GET`.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use reqwest::Method;

use crate::helpers::{Body, assert_audit_fields, event_types, fold_history, spawn_app, stock_of};

#[tokio::test]
async fn history_lists_events_oldest_first_with_their_metadata() {
    let app = spawn_app().await;
    app.given_product("p-1", 10, 5).await;
    app.restock("p-1", 3).await.data(StatusCode::OK);
    app.restock("p-1", 4).await.data(StatusCode::OK);

    let history = app.history("p-1").await;

    assert_eq!(event_types(&history), ["ProductAdded", "StockRestocked", "StockRestocked"]);
    let sequences: Vec<&Value> = history.iter().map(|e| &e["sequence"]).collect();
    assert_eq!(sequences, [&json!(1), &json!(2), &json!(3)]);
    let payloads: Vec<&Value> = history.iter().map(|e| &e["payload"]).collect();
    assert_eq!(
        payloads,
        [
            &json!({"name": "Product p-1", "initialStock": 10, "lowStockThreshold": 5}),
            &json!({"quantity": 3}),
            &json!({"quantity": 4})
        ]
    );
    let mut event_ids = HashSet::new();
    let mut previous_time = String::new();
    for event in &history {
        assert_audit_fields(event);
        assert_eq!(event["eventVersion"], "1.0", "{event}");
        let event_id = event["eventId"].as_str().expect("eventId is a string");
        assert!(event_ids.insert(event_id.to_owned()), "eventId {event_id} is unique");
        let occurred_at = event["occurredAt"].as_str().expect("occurredAt is a string").to_owned();
        assert!(
            occurred_at.ends_with('Z') && occurred_at.len() >= 20,
            "occurredAt {occurred_at} is an RFC 3339 UTC time"
        );
        assert!(occurred_at >= previous_time, "occurredAt goes forward: {occurred_at} after {previous_time}");
        previous_time = occurred_at;
        for key in ["correlationId", "causationId"] {
            assert!(event[key].as_str().is_some_and(|v| !v.is_empty()), "{key} is set in {event}");
        }
    }
}

#[tokio::test]
async fn adding_a_product_without_stock_is_followed_by_out_of_stock() {
    let app = spawn_app().await;

    let added = app.given_product("p-1", 0, 3).await;

    let history = app.history("p-1").await;
    assert_eq!(event_types(&history), ["ProductAdded", "OutOfStock"]);
    assert_eq!(history[1]["payload"], json!({}));
    assert_eq!(history[0]["correlationId"], history[1]["correlationId"], "the alert belongs to the same request");
    assert_eq!((added["stockStatus"].clone(), added["version"].clone()), (json!("OUT_OF_STOCK"), json!(2)));
}

#[tokio::test]
async fn adding_a_product_at_its_threshold_is_followed_by_low_stock_reached() {
    let app = spawn_app().await;

    app.given_product("p-1", 3, 3).await;
    app.given_product("p-2", 4, 3).await;

    let low = app.history("p-1").await;
    assert_eq!(event_types(&low), ["ProductAdded", "LowStockReached"]);
    assert_eq!(low[1]["payload"], json!({"available": 3}));
    assert_eq!(event_types(&app.history("p-2").await), ["ProductAdded"], "above the threshold: no alert");
}

#[tokio::test]
async fn restocking_from_zero_is_followed_by_back_in_stock() {
    let app = spawn_app().await;
    app.given_product("p-1", 0, 2).await;

    let restocked = app.restock("p-1", 7).await.data(StatusCode::OK).clone();

    let history = app.history("p-1").await;
    assert_eq!(event_types(&history), ["ProductAdded", "OutOfStock", "StockRestocked", "BackInStock"]);
    assert_eq!(history[2]["payload"], json!({"quantity": 7}));
    assert_eq!(history[3]["payload"], json!({"available": 7}));
    assert_eq!(restocked["version"], 4);
}

#[tokio::test]
async fn restocking_a_product_in_stock_raises_no_alert() {
    let app = spawn_app().await;
    app.given_product("p-1", 1, 5).await;

    app.restock("p-1", 2).await.data(StatusCode::OK);
    app.restock("p-1", 10).await.data(StatusCode::OK);

    let history = app.history("p-1").await;
    assert_eq!(
        event_types(&history),
        ["ProductAdded", "LowStockReached", "StockRestocked", "StockRestocked"],
        "low to low and low to in stock are not alerts"
    );
}

#[tokio::test]
async fn the_correlation_id_header_becomes_the_correlation_id_of_the_events() {
    let app = spawn_app().await;

    let added = app
        .add_product_with(
            &json!({"productId": "p-1", "name": "Mug", "quantity": 0}),
            &[("x-correlation-id", "checkout-123")],
        )
        .await;
    let restocked =
        app.restock_with("p-1", 5, &[("x-correlation-id", "delivery-9"), ("x-request-id", "req-restock-1")]).await;

    added.data(StatusCode::CREATED);
    restocked.data(StatusCode::OK);
    let history = app.history("p-1").await;
    let ids: Vec<(&str, &Value, &Value)> = history
        .iter()
        .map(|e| (e["eventType"].as_str().expect("eventType"), &e["correlationId"], &e["causationId"]))
        .collect();
    let add_request = json!(added.header("x-request-id").expect("every answer carries its request id"));
    assert_eq!(
        ids,
        [
            ("ProductAdded", &json!("checkout-123"), &add_request),
            ("OutOfStock", &json!("checkout-123"), &add_request),
            ("StockRestocked", &json!("delivery-9"), &json!("req-restock-1")),
            ("BackInStock", &json!("delivery-9"), &json!("req-restock-1")),
        ]
    );
    assert_eq!(restocked.header("x-request-id"), Some("req-restock-1"), "the client's request id is echoed");
}

#[tokio::test]
async fn without_a_usable_correlation_id_the_request_id_correlates_the_events() {
    let app = spawn_app().await;

    let plain = app.add_product(&json!({"productId": "p-1", "name": "Mug", "quantity": 1})).await;
    let unusable = app
        .add_product_with(
            &json!({"productId": "p-2", "name": "Cup", "quantity": 1}),
            &[("x-correlation-id", "has spaces in it")],
        )
        .await;

    for (answer, id) in [(plain, "p-1"), (unusable, "p-2")] {
        answer.data(StatusCode::CREATED);
        let request_id = answer.header("x-request-id").expect("a generated request id").to_owned();
        assert!(uuid::Uuid::parse_str(&request_id).is_ok(), "generated request id {request_id} is a UUID");
        let history = app.history(id).await;
        assert_eq!(history[0]["correlationId"], json!(request_id), "{id}");
        assert_eq!(history[0]["causationId"], json!(request_id), "{id}");
    }
}

#[tokio::test]
async fn the_history_of_an_unknown_or_impossible_product_is_404() {
    let app = spawn_app().await;
    app.given_product("p-1", 1, 0).await;

    let unknown = app.events("p-2").await;
    let impossible = app.events("not%20an%20id").await;

    assert_eq!(unknown.error(StatusCode::NOT_FOUND, "unknown"), "product 'p-2' not found");
    assert_eq!(impossible.error(StatusCode::NOT_FOUND, "impossible"), "product 'not an id' not found");
}

#[tokio::test]
async fn the_product_read_model_is_the_fold_of_its_history() {
    let app = spawn_app().await;
    let initial_stock = 12;
    app.given_product("p-1", initial_stock, 5).await;
    let restocks = [3, 1, 40, 7];
    for quantity in restocks {
        app.restock("p-1", quantity).await.data(StatusCode::OK);
    }
    // Refused requests leave nothing to fold.
    app.restock("p-1", 0).await.error(StatusCode::UNPROCESSABLE_ENTITY, "zero restock");
    app.add_product(&json!({"productId": "p-1", "name": "Again", "quantity": 1}))
        .await
        .error(StatusCode::CONFLICT, "taken");

    let product = app.get_product("p-1").await.data(StatusCode::OK).clone();
    let history = app.history("p-1").await;

    let restocked: u64 = history
        .iter()
        .filter(|e| e["eventType"] == "StockRestocked")
        .map(|e| e["payload"]["quantity"].as_u64().expect("quantity is a count"))
        .sum();
    assert_eq!(restocked, restocks.iter().sum::<i64>() as u64);
    assert_eq!(product["available"], u64::from(initial_stock) + restocked);
    assert_eq!(product["version"], history.len());
    assert_eq!(history.last().map(|e| e["sequence"].clone()), Some(product["version"].clone()));
    assert_eq!(fold_history("p-1", &history), product, "folding /events gives GET");
    assert_eq!(
        app.count_events().await as usize,
        history.len(),
        "one product, so every stored event is in its history"
    );
}

#[tokio::test]
async fn every_product_read_model_is_the_fold_of_its_history_through_alerts() {
    let app = spawn_app().await;
    app.given_product("empty", 0, 4).await;
    app.given_product("low", 2, 4).await;
    app.given_product("plenty", 9, 4).await;
    for (id, quantity) in [("empty", 1), ("low", 1), ("empty", 10), ("plenty", 3), ("low", 5)] {
        app.restock(id, quantity).await.data(StatusCode::OK);
    }

    let mut total = 0;
    for id in ["empty", "low", "plenty"] {
        total += app.assert_history_explains_product(id).await.len();
    }
    assert_eq!(app.count_events().await as usize, total);
}

#[tokio::test]
async fn as_of_a_version_or_a_time_is_the_product_as_it_was_then() {
    let app = spawn_app().await;
    app.add_product(&json!({"productId": "mug", "name": "Mug", "quantity": 3, "lowStockThreshold": 5}))
        .await
        .data(StatusCode::CREATED);
    app.restock("mug", 10).await.data(StatusCode::OK);
    let history = app.assert_history_explains_product("mug").await;
    let get = |query: String| {
        let app = &app;
        async move { app.send(Method::GET, &format!("/inventory/products/mug?asOf={query}"), &[], Body::None).await }
    };
    for version in 1..=history.len() {
        let then = get(version.to_string()).await.data(StatusCode::OK).clone();
        assert_eq!(then, fold_history("mug", &history[..version]), "asOf={version}");
        // Events of one transaction share their time: a time never splits them.
        let at = history[version - 1]["recordedAt"].clone();
        let through = history
            .iter()
            .filter(|e| e["recordedAt"] == at)
            .map(|e| e["sequence"].as_u64().expect("sequence"))
            .max()
            .expect("this event");
        let by_time = get(at.as_str().expect("recordedAt").replace('+', "%2B")).await.data(StatusCode::OK).clone();
        assert_eq!(by_time, fold_history("mug", &history[..through as usize]), "asOf the time of event {version}");
    }
    get((history.len() + 1).to_string()).await.error(StatusCode::NOT_FOUND, "a version the product never had");
    let message =
        get("soon".to_owned()).await.error(StatusCode::UNPROCESSABLE_ENTITY, "not a version nor a time").to_owned();
    assert!(message.contains("asOf"), "{message}");
}

#[tokio::test]
async fn as_of_shows_the_stock_before_and_after_a_shipment_and_the_adjustments_around_it() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let order_id = domain::OrderId::generate();
    app.reserve("mug", order_id, 3, 1).await;
    app.send(
        Method::POST,
        "/inventory/products/mug/adjustments",
        &[],
        Body::Json(json!({"quantity": -2, "reason": "DAMAGED"})),
    )
    .await
    .data(StatusCode::OK);
    app.decide(&[("mug", domain::inventory::ProductCommand::ShipStock { order_id, revision: 6 })]).await;
    app.send(
        Method::POST,
        "/inventory/products/mug/adjustments",
        &[],
        Body::Json(json!({"quantity": 1, "reason": "FOUND"})),
    )
    .await
    .data(StatusCode::OK);
    let history = app.assert_history_explains_product("mug").await;
    assert_eq!(
        event_types(&history),
        ["ProductAdded", "StockReserved", "StockAdjusted", "StockShipped", "StockAdjusted"],
        "no alert: available never reaches the threshold"
    );

    // (version, onHand, available, reserved, shipped), after each event.
    let expected = [
        (1, 10, 10, 0, 0),
        (2, 10, 7, 3, 0), // reserved for the order: still on hand
        (3, 8, 5, 3, 0),  // two damaged units leave; the reserved ones stay
        (4, 5, 5, 0, 3),  // shipped: the reserved units leave the warehouse
        (5, 6, 6, 0, 3),  // one found
    ];
    for (version, on_hand, available, reserved, shipped) in expected {
        let then = app.send(Method::GET, &format!("/inventory/products/mug?asOf={version}"), &[], Body::None).await;
        let then = then.data(StatusCode::OK);
        assert_eq!(stock_of(then), (on_hand, available, reserved, shipped), "asOf={version}: {then}");
        assert_eq!(then["version"], version, "asOf={version}");
        assert_eq!(then, &fold_history("mug", &history[..version as usize]), "asOf={version} is the fold so far");
    }
    assert_eq!(app.stock("mug").await, (6, 6, 0, 3), "the last version is the product now");
}
