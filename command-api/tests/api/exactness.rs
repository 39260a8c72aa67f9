//! The API document states exactly the rules the OMS enforces on a request's shape:
//! each value of these tables is allowed by the document exactly when the service
//! accepts it (answers neither 400 nor 422; a 404, 409 or 412 is about what is stored,
//! not about the request). `scripts/test` fuzzes the same with schemathesis; the
//! tables pin the values where the two once differed.

use serde_json::json;

use crate::helpers::{order_id, spawn_app};

#[tokio::test]
async fn the_document_allows_exactly_the_parameters_the_service_accepts() {
    let app = spawn_app().await;
    let document = app.openapi().await;
    let order = format!("/oms/orders/{}", order_id(&app.place_order("alice", &[("mug", 2)]).await));

    for value in [
        "1",
        "9999999999999999999",
        "10000000000000000000",
        "0",
        "01",
        "+1",
        "",
        "yesterday",
        "2026-12-01T10:00:00Z",
        "2026-12-01t10:00:00.123456789z",
        "2026-12-01T10:00:00+23:59",
        "2026-12-01T10:00:00+24:00",
        "2026-12-01 10:00:00Z",
        "2026-12-01T10:00:60Z",
        "2024-02-29T00:00:00Z",
        "2026-02-29T00:00:00Z",
    ] {
        app.assert_parameter_exact(&document, ("get", "/oms/orders/{orderId}"), "asOf", (&order, None), value).await;
    }

    let id = "6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b";
    let cursors = [
        format!("0.{id}"),
        format!("99999999999999999.{id}"),
        format!("100000000000000000.{id}"),
        format!("01.{id}"),
        format!("1.{}", id.to_uppercase()),
        format!("1|{id}"),
        String::new(),
        "eWVzdGVyZGF5".to_owned(),
    ];
    let (long, too_long) = ("u".repeat(128), "u".repeat(129));
    let users = ["alice", "é", "a\u{feff}b", &long, &too_long, "", "a b", "a\u{a0}b", "a\u{85}b", "\u{3000}"];
    let list = ("get", "/oms/orders");
    for value in cursors.iter().map(String::as_str) {
        app.assert_parameter_exact(&document, list, "cursor", ("/oms/orders", None), value).await;
    }
    for value in users {
        app.assert_parameter_exact(&document, list, "userId", ("/oms/orders", None), value).await;
    }

    let unchanged = json!({"orderItems": [{"productId": "mug", "quantity": 2}]});
    let put = ("put", "/oms/orders/{orderId}");
    for value in
        [r#""1""#, "*", r#"W/"1""#, r#""1", "2""#, r#", "a,b",, "1""#, "", "1", r#""1" "2""#, r#"*, "1""#, r#""a b""#]
    {
        app.assert_parameter_exact(&document, put, "If-Match", (&order, Some(&unchanged)), value).await;
    }

    let placement = json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 1}]});
    let (long, too_long) = ("k".repeat(255), "k".repeat(256));
    for value in ["k-1", "!~", &long, &too_long, "", "a b"] {
        let request = ("/oms/orders", Some(&placement));
        app.assert_parameter_exact(&document, ("post", "/oms/orders"), "Idempotency-Key", request, value).await;
    }
}

#[tokio::test]
async fn the_document_allows_exactly_the_bodies_the_service_accepts() {
    let app = spawn_app().await;
    let document = app.openapi().await;
    for body in [
        json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 1.0}]}),
        json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 1.5}]}),
        json!({"userId": "a\u{feff}b", "orderItems": [{"productId": "mug", "quantity": 1}]}),
        json!({"userId": " ", "orderItems": [{"productId": "mug", "quantity": 1}]}),
        json!({"userId": "a\u{85}b", "orderItems": [{"productId": "mug", "quantity": 1}]}),
        json!({"userId": "alice", "orderItems": []}),
    ] {
        app.assert_body_exact(&document, ("post", "/oms/orders"), "/oms/orders", &body).await;
    }
    for body in [
        json!({}),
        json!({"status": null}),
        json!({"orderItems": null}),
        json!({"orderItems": []}),
        json!({"status": "CANCELED", "orderItems": []}),
        json!({"status": "EXECUTED"}),
        json!({"orderItems": [{"productId": "mug"}]}),
        json!({"orderItems": [{"productId": "mug", "status": "PENDING"}]}),
        json!({"orderItems": [{"productId": "mug", "quantity": 3, "status": "PENDING"}]}),
        json!({"orderItems": [{"productId": "mug", "quantity": 3.0, "status": null}]}),
        json!({"orderItems": [{"productId": "mug", "quantity": 3, "status": "CANCELED"}]}),
        json!({"orderItems": [{"productId": "mug", "quantity": null, "status": "CANCELED"}]}),
        json!({"orderItems": [{"productId": "mug", "status": "EXECUTED"}]}),
    ] {
        // Each on an order of its own, as it was placed.
        let order = format!("/oms/orders/{}", order_id(&app.place_order("alice", &[("mug", 2)]).await));
        app.assert_body_exact(&document, ("put", "/oms/orders/{orderId}"), &order, &body).await;
    }
}
