//! The API document at `/openapi.json`: it lists exactly the routes served, its
//! examples fit its schemas, and the service's real answers fit them too (the checks
//! themselves are `http_server::openapi_checks`, shared with the OMS).

use reqwest::{Method, StatusCode};
use serde_json::json;

use http_server::openapi_checks::{answer_schema, check};
use service_kit::testing::request_example;

use crate::helpers::{Body, spawn_app};

/// Every operation of the inventory service's own, as `(method, path template)`.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/inventory/products"),
    ("post", "/inventory/products"),
    ("get", "/inventory/products/{productId}"),
    ("put", "/inventory/products/{productId}"),
    ("post", "/inventory/products/{productId}/restock"),
    ("post", "/inventory/products/{productId}/adjustments"),
    ("get", "/inventory/products/{productId}/events"),
];

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    spawn_app().await.assert_documents_exactly(OPERATIONS, ("{productId}", "no-such-product")).await;
}

#[tokio::test]
async fn every_documented_example_fits_its_schema() {
    let restock = ("post", "/inventory/products/{productId}/restock");
    let statuses = ["200", "400", "404", "409", "413", "415", "422", "429", "503"];
    spawn_app().await.assert_examples_fit(25, restock, &statuses).await;
}

#[tokio::test]
async fn the_documented_request_examples_are_accepted_and_every_answer_fits_its_schema() {
    let app = spawn_app().await;
    let document = app.openapi().await;
    let example = |method: &str, path: &str| request_example(&document, method, path);

    let added =
        app.send(Method::POST, "/inventory/products", &[], Body::Json(example("post", "/inventory/products"))).await;
    check(&document, answer_schema(&document, "post", "/inventory/products", 201), &added.body, "added");
    let product_id = added.data(StatusCode::CREATED)["productId"].as_str().expect("productId").to_owned();
    let product_path = format!("/inventory/products/{product_id}");

    let restock_template = "/inventory/products/{productId}/restock";
    let restocked = app
        .send(Method::POST, &format!("{product_path}/restock"), &[], Body::Json(example("post", restock_template)))
        .await;
    check(&document, answer_schema(&document, "post", restock_template, 200), &restocked.body, "restocked");
    assert_eq!(restocked.data(StatusCode::OK)["available"], json!(150), "the examples add 100, then 50");

    let again =
        app.send(Method::POST, "/inventory/products", &[], Body::Json(example("post", "/inventory/products"))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    check(&document, answer_schema(&document, "post", "/inventory/products", 409), &again.body, "taken");

    let answers = [
        ("/inventory/products/{productId}", product_path.clone(), 200),
        ("/inventory/products", "/inventory/products?limit=5".to_owned(), 200),
        ("/inventory/products/{productId}/events", format!("{product_path}/events"), 200),
        ("/inventory/products/{productId}", "/inventory/products/no-such-product".to_owned(), 404),
        ("/inventory/products", "/inventory/products?limit=0".to_owned(), 422),
        ("/health/live", "/health/live".to_owned(), 200),
        ("/health/ready", "/health/ready".to_owned(), 503),
    ];
    app.assert_answers_fit(&document, &answers).await;
    let refused =
        app.send(Method::POST, &format!("{product_path}/restock"), &[], Body::Json(json!({"quantity": 0}))).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    check(&document, answer_schema(&document, "post", restock_template, 422), &refused.body, "refused");
}

#[tokio::test]
async fn the_docs_page_is_served() {
    spawn_app().await.assert_docs_page_served().await;
}
