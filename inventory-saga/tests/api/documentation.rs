//! The API document at `/openapi.json`: it lists exactly the routes served, its
//! examples fit its schemas, and the service's real answers fit them too. (The same
//! checks as the OMS's; test suites cannot share code without a crate of their own.)

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Body, TestApp, spawn_app};

/// Every operation the inventory service serves, as `(method, path template)`.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/inventory/products"),
    ("post", "/inventory/products"),
    ("get", "/inventory/products/{productId}"),
    ("post", "/inventory/products/{productId}/restock"),
    ("get", "/inventory/products/{productId}/events"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
];

async fn document(app: &TestApp) -> Value {
    let response = app.client.get(format!("{}/openapi.json", app.address)).send().await.expect("GET /openapi.json");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("the document is JSON")
}

/// The documented operations of `document`, as `(method, path)`.
fn documented(document: &Value) -> Vec<(String, String)> {
    let mut operations: Vec<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().expect("path item").keys().filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str())).map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    operations.sort();
    operations
}

/// Validates `instance` against `schema`, whose `$ref`s point into `document`'s components.
fn check(document: &Value, schema: &Value, instance: &Value, label: &str) {
    let mut root = schema.clone();
    root.as_object_mut().expect("a schema object").insert("components".to_owned(), document["components"].clone());
    let validator = jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("[{label}] the schema does not compile: {e}\n{schema}"));
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "[{label}] {instance}\ndoes not fit {schema}:\n{}", errors.join("\n"));
}

/// The JSON schema of the `status` answer of `method path`.
fn answer_schema<'a>(document: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let schema = &document["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} documents no {status} answer");
    schema
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "OpenAPI 3.1: {}", document["openapi"]);
    let mut expected: Vec<(String, String)> = OPERATIONS.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    assert_eq!(documented(&document), expected);

    for (method, path) in documented(&document) {
        let concrete = path.replace("{productId}", "no-such-product");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = app.client.request(method.clone(), format!("{}{concrete}", app.address)).send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            !text.contains("no such route") && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not served: {status} {text}"
        );
    }
}

#[tokio::test]
async fn every_documented_example_fits_its_schema() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let mut checked = 0;
    for (method, path) in documented(&document) {
        let operation = &document["paths"][&path][&method];
        let mut media = vec![(format!("{method} {path} request"), &operation["requestBody"]["content"]["application/json"])];
        for (status, answer) in operation["responses"].as_object().expect("responses") {
            media.push((format!("{method} {path} {status}"), &answer["content"]["application/json"]));
        }
        for (label, media) in media {
            if let Some(example) = media.get("example") {
                check(&document, &media["schema"], example, &label);
                checked += 1;
            }
        }
    }
    for (name, schema) in document["components"]["schemas"].as_object().expect("schemas") {
        if let Some(example) = schema.get("example") {
            check(&document, schema, example, name);
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} examples: most answers should show one");
    let restocking = &document["paths"]["/inventory/products/{productId}/restock"]["post"]["responses"];
    for status in ["200", "400", "404", "409", "413", "415", "422", "429", "503"] {
        assert!(restocking[status]["content"]["application/json"]["example"].is_object(), "restock documents {status} with an example");
    }
}

#[tokio::test]
async fn the_documented_request_examples_are_accepted_and_every_answer_fits_its_schema() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let example = |method: &str, path: &str| document["paths"][path][method]["requestBody"]["content"]["application/json"]["example"].clone();

    let added = app.send(Method::POST, "/inventory/products", &[], Body::Json(example("post", "/inventory/products"))).await;
    check(&document, answer_schema(&document, "post", "/inventory/products", 201), &added.body, "added");
    let product_id = added.data(StatusCode::CREATED)["productId"].as_str().expect("productId").to_owned();
    let product_path = format!("/inventory/products/{product_id}");

    let restock_template = "/inventory/products/{productId}/restock";
    let restocked = app.send(Method::POST, &format!("{product_path}/restock"), &[], Body::Json(example("post", restock_template))).await;
    check(&document, answer_schema(&document, "post", restock_template, 200), &restocked.body, "restocked");
    assert_eq!(restocked.data(StatusCode::OK)["available"], json!(150), "the examples add 100, then 50");

    let again = app.send(Method::POST, "/inventory/products", &[], Body::Json(example("post", "/inventory/products"))).await;
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
    for (template, path, status) in answers {
        let answer = app.send(Method::GET, &path, &[], Body::None).await;
        assert_eq!(answer.status.as_u16(), status, "GET {path}: {}", answer.body);
        check(&document, answer_schema(&document, "get", template, status), &answer.body, &path);
    }
    let refused = app.send(Method::POST, &format!("{product_path}/restock"), &[], Body::Json(json!({"quantity": 0}))).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    check(&document, answer_schema(&document, "post", restock_template, 422), &refused.body, "refused");
}

#[tokio::test]
async fn the_docs_page_is_served() {
    let app = spawn_app().await;
    let page = app.client.get(format!("{}/docs/", app.address)).send().await.expect("GET /docs/");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap_or_default().contains("swagger-ui"));
}
