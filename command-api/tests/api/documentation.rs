//! The API document at `/openapi.json`: it lists exactly the routes served, its
//! examples fit its schemas, and the service's real answers fit them too.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::json;

use http_server::openapi_checks::{answer_schema, check, check_every_example};

use crate::helpers::{Body, spawn_app};

/// Every operation the OMS serves, as `(method, path template)`.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/oms/orders"),
    ("post", "/oms/orders"),
    ("get", "/oms/orders/{orderId}"),
    ("put", "/oms/orders/{orderId}"),
    ("get", "/oms/orders/{orderId}/events"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
];

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let app = spawn_app().await;
    app.assert_documents_exactly(OPERATIONS, ("{orderId}", "00000000-0000-4000-8000-000000000000")).await;
}

#[tokio::test]
async fn every_documented_example_fits_its_schema() {
    let app = spawn_app().await;
    let document = app.openapi().await;
    let checked = check_every_example(&document);
    assert!(checked >= 25, "only {checked} examples: most answers should show one");
    let placing = &document["paths"]["/oms/orders"]["post"]["responses"];
    for status in ["201", "400", "413", "415", "422", "429", "503"] {
        assert!(
            placing[status]["content"]["application/json"]["example"].is_object(),
            "POST /oms/orders documents {status} with an example"
        );
    }
}

#[tokio::test]
async fn the_documented_request_examples_are_accepted_and_every_answer_fits_its_schema() {
    let app = spawn_app().await;
    let document = app.openapi().await;
    let example = |method: &str, path: &str| {
        document["paths"][path][method]["requestBody"]["content"]["application/json"]["example"].clone()
    };

    let placed = app.send(Method::POST, "/oms/orders", &[], Body::Json(example("post", "/oms/orders"))).await;
    check(&document, answer_schema(&document, "post", "/oms/orders", 201), &placed.body, "placed");
    let order_id = placed.data(StatusCode::CREATED)["orderId"].as_str().expect("orderId").to_owned();
    let order_path = format!("/oms/orders/{order_id}");

    let updated = app.send(Method::PUT, &order_path, &[], Body::Json(example("put", "/oms/orders/{orderId}"))).await;
    check(&document, answer_schema(&document, "put", "/oms/orders/{orderId}", 200), &updated.body, "updated");
    assert_eq!(
        updated.data(StatusCode::OK)["orderItems"].as_array().map(Vec::len),
        Some(2),
        "the example resizes one item and adds one"
    );

    let answers = [
        ("get", "/oms/orders/{orderId}", order_path.clone(), 200),
        ("get", "/oms/orders", "/oms/orders?limit=5".to_owned(), 200),
        ("get", "/oms/orders/{orderId}/events", format!("{order_path}/events"), 200),
        ("get", "/oms/orders/{orderId}", "/oms/orders/00000000-0000-4000-8000-000000000000".to_owned(), 404),
        ("get", "/oms/orders", "/oms/orders?limit=0".to_owned(), 422),
        ("get", "/health/live", "/health/live".to_owned(), 200),
        ("get", "/health/ready", "/health/ready".to_owned(), 503),
    ];
    for (method, template, path, status) in answers {
        let answer = app.send(Method::GET, &path, &[], Body::None).await;
        assert_eq!(answer.status.as_u16(), status, "GET {path}: {}", answer.body);
        check(&document, answer_schema(&document, method, template, status), &answer.body, &path);
    }
    let refused =
        app.send(Method::POST, "/oms/orders", &[], Body::Json(json!({"userId": "u-1", "orderItems": []}))).await;
    check(&document, answer_schema(&document, "post", "/oms/orders", 422), &refused.body, "refused");
    let shipped_cancel = app.send(Method::PUT, &order_path, &[], Body::Json(json!({"status": "SHIPPED"}))).await;
    assert_eq!(shipped_cancel.status, StatusCode::CONFLICT, "{}", shipped_cancel.body);
    check(&document, answer_schema(&document, "put", "/oms/orders/{orderId}", 409), &shipped_cancel.body, "conflict");
}

#[tokio::test]
async fn the_docs_page_is_served() {
    let app = spawn_app().await;
    let page = app.client.get(format!("{}/docs/", app.address)).send().await.expect("GET /docs/");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap_or_default().contains("swagger-ui"));
}
