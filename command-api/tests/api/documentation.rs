//! The API document at `/openapi.json`: it lists exactly the routes served, its
//! examples fit its schemas, and the service's real answers fit them too.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::json;

use http_server::openapi_checks::{answer_schema, check};
use service_kit::testing::request_example;

use crate::helpers::{Body, spawn_app};

/// Every operation of the OMS's own, as `(method, path template)`.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/oms/orders"),
    ("post", "/oms/orders"),
    ("get", "/oms/orders/{orderId}"),
    ("put", "/oms/orders/{orderId}"),
    ("get", "/oms/orders/{orderId}/events"),
];

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let parameter = ("{orderId}", "00000000-0000-4000-8000-000000000000");
    spawn_app().await.assert_documents_exactly(OPERATIONS, parameter).await;
}

#[tokio::test]
async fn every_documented_example_fits_its_schema() {
    let placing = ("post", "/oms/orders");
    spawn_app().await.assert_examples_fit(25, placing, &["201", "400", "413", "415", "422", "429", "503"]).await;
}

#[tokio::test]
async fn the_documented_request_examples_are_accepted_and_every_answer_fits_its_schema() {
    let app = spawn_app().await;
    let document = app.openapi().await;
    let example = |method: &str, path: &str| request_example(&document, method, path);

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
        ("/oms/orders/{orderId}", order_path.clone(), 200),
        ("/oms/orders", "/oms/orders?limit=5".to_owned(), 200),
        ("/oms/orders/{orderId}/events", format!("{order_path}/events"), 200),
        ("/oms/orders/{orderId}", "/oms/orders/00000000-0000-4000-8000-000000000000".to_owned(), 404),
        ("/oms/orders", "/oms/orders?limit=0".to_owned(), 422),
        ("/health/live", "/health/live".to_owned(), 200),
        ("/health/ready", "/health/ready".to_owned(), 503),
    ];
    app.assert_answers_fit(&document, &answers).await;
    let refused =
        app.send(Method::POST, "/oms/orders", &[], Body::Json(json!({"userId": "u-1", "orderItems": []}))).await;
    check(&document, answer_schema(&document, "post", "/oms/orders", 422), &refused.body, "refused");
    let shipped_cancel = app.send(Method::PUT, &order_path, &[], Body::Json(json!({"status": "SHIPPED"}))).await;
    assert_eq!(shipped_cancel.status, StatusCode::CONFLICT, "{}", shipped_cancel.body);
    check(&document, answer_schema(&document, "put", "/oms/orders/{orderId}", 409), &shipped_cancel.body, "conflict");
}

#[tokio::test]
async fn the_docs_page_is_served() {
    spawn_app().await.assert_docs_page_served().await;
}
