//! Refused requests: each gets a 4xx in the envelope with a message naming what is
//! wrong, and none leaves an event behind (DESIGN.md, invariant 7).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{BODY_LIMIT_BYTES, Body, spawn_app};

const PRODUCTS: &str = "/inventory/products";
/// The restock route of `p-1`, a product that exists.
const RESTOCK: &str = "/inventory/products/p-1/restock";
const JSON: &str = "application/json";

/// One refused request: what is sent, and the status and message fragment expected.
struct Case {
    label: &'static str,
    method: Method,
    path: String,
    headers: &'static [(&'static str, &'static str)],
    body: Body,
    status: StatusCode,
    fragment: &'static str,
}

impl Case {
    fn new(
        label: &'static str,
        method: Method,
        path: &str,
        body: Body,
        status: StatusCode,
        fragment: &'static str,
    ) -> Self {
        Self { label, method, path: path.to_owned(), headers: &[], body, status, fragment }
    }

    fn with_headers(self, headers: &'static [(&'static str, &'static str)]) -> Self {
        Self { headers, ..self }
    }
}

/// `POST` of `body` to `path`.
fn post(label: &'static str, path: &str, body: Body, status: StatusCode, fragment: &'static str) -> Case {
    Case::new(label, Method::POST, path, body, status, fragment)
}

/// `POST /inventory/products` with a JSON body.
fn add(label: &'static str, body: Value, status: StatusCode, fragment: &'static str) -> Case {
    post(label, PRODUCTS, Body::Json(body), status, fragment)
}

/// `POST /inventory/products/p-1/restock` with a JSON body.
fn restock(label: &'static str, body: Value, status: StatusCode, fragment: &'static str) -> Case {
    post(label, RESTOCK, Body::Json(body), status, fragment)
}

/// `GET` of `path`.
fn get(label: &'static str, path: &str, status: StatusCode, fragment: &'static str) -> Case {
    Case::new(label, Method::GET, path, Body::None, status, fragment)
}

/// A valid add body.
fn valid_add() -> Value {
    json!({"productId": "p-2", "name": "Cup", "quantity": 5, "lowStockThreshold": 1})
}

/// A valid add body with `key` set to `value`.
fn add_with(key: &str, value: Value) -> Value {
    let mut body = valid_add();
    body[key] = value;
    body
}

/// A valid add body without `key`.
fn add_without(key: &str) -> Value {
    let mut body = valid_add();
    body.as_object_mut().expect("an object").remove(key);
    body
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use StatusCode as S;
    let text = |value: &str| Body::Text(value.to_owned());
    let raw = |value: &str| Body::Raw(JSON, value.to_owned());
    let too_large = add_with("padding", json!("x".repeat(BODY_LIMIT_BYTES))).to_string();
    vec![
        // Adding a product: the body as a whole.
        post("malformed JSON", PRODUCTS, raw(r#"{"productId": "p-2", "#), S::BAD_REQUEST, "malformed JSON"),
        post("empty body", PRODUCTS, raw(""), S::BAD_REQUEST, "malformed JSON"),
        post("text/plain content type", PRODUCTS, text(&valid_add().to_string()), S::UNSUPPORTED_MEDIA_TYPE, "Content-Type: application/json")
            .with_headers(&[("content-type", "text/plain")]),
        post("form content type", PRODUCTS, text("productId=p-2&name=Cup&quantity=5"), S::UNSUPPORTED_MEDIA_TYPE, "Content-Type: application/json")
            .with_headers(&[("content-type", "application/x-www-form-urlencoded")]),
        post("no content type", PRODUCTS, text(&valid_add().to_string()), S::UNSUPPORTED_MEDIA_TYPE, "Content-Type: application/json"),
        post("no body at all", PRODUCTS, Body::None, S::UNSUPPORTED_MEDIA_TYPE, "Content-Type: application/json"),
        post("body over the limit", PRODUCTS, raw(&too_large), S::PAYLOAD_TOO_LARGE, "too large"),
        add("a number instead of an object", json!(42), S::UNPROCESSABLE_ENTITY, "body: expected a JSON object"),
        add("null instead of an object", Value::Null, S::UNPROCESSABLE_ENTITY, "body: expected a JSON object"),
        add("unknown field", add_with("color", json!("blue")), S::UNPROCESSABLE_ENTITY, "unknown field `color`"),
        post("duplicate field", PRODUCTS, raw(r#"{"productId": "p-2", "name": "Cup", "quantity": 1, "quantity": 2}"#), S::UNPROCESSABLE_ENTITY, "duplicate field `quantity`"),
        // Adding a product: productId.
        add("missing productId", add_without("productId"), S::UNPROCESSABLE_ENTITY, "missing field `productId`"),
        add("null productId", add_with("productId", Value::Null), S::UNPROCESSABLE_ENTITY, "productId: invalid type: null"),
        add("numeric productId", add_with("productId", json!(42)), S::UNPROCESSABLE_ENTITY, "productId: invalid type: integer"),
        add("empty productId", add_with("productId", json!("")), S::UNPROCESSABLE_ENTITY, "productId: must not be empty"),
        add("productId with a slash", add_with("productId", json!("a/b")), S::UNPROCESSABLE_ENTITY, "productId: must contain only letters, digits"),
        add("productId with a space", add_with("productId", json!("a b")), S::UNPROCESSABLE_ENTITY, "productId: must contain only letters, digits"),
        add("productId of 65 characters", add_with("productId", json!("x".repeat(65))), S::UNPROCESSABLE_ENTITY, "productId: must be at most 64 characters"),
        // Adding a product: name.
        add("missing name", add_without("name"), S::UNPROCESSABLE_ENTITY, "missing field `name`"),
        add("empty name", add_with("name", json!("")), S::UNPROCESSABLE_ENTITY, "name: must be 1 to 200 characters and not blank"),
        add("blank name", add_with("name", json!("   ")), S::UNPROCESSABLE_ENTITY, "name: must be 1 to 200 characters and not blank"),
        add("name of 201 characters", add_with("name", json!("n".repeat(201))), S::UNPROCESSABLE_ENTITY, "name: must be 1 to 200 characters"),
        add("name with a control character", add_with("name", json!("Mug\u{7}")), S::UNPROCESSABLE_ENTITY, "name: must be 1 to 200 characters"),
        // Adding a product: quantity and threshold.
        add("missing quantity", add_without("quantity"), S::UNPROCESSABLE_ENTITY, "missing field `quantity`"),
        add("negative quantity", add_with("quantity", json!(-1)), S::UNPROCESSABLE_ENTITY, "quantity: invalid value: integer `-1`"),
        add("fractional quantity", add_with("quantity", json!(2.5)), S::UNPROCESSABLE_ENTITY, "quantity: invalid type: floating point `2.5`"),
        add("quantity as a string", add_with("quantity", json!("10")), S::UNPROCESSABLE_ENTITY, "quantity: invalid type: string \"10\""),
        add("quantity beyond u32", add_with("quantity", json!(4_294_967_296_u64)), S::UNPROCESSABLE_ENTITY, "quantity: invalid value"),
        add("negative lowStockThreshold", add_with("lowStockThreshold", json!(-3)), S::UNPROCESSABLE_ENTITY, "lowStockThreshold: invalid value: integer `-3`"),
        add("null lowStockThreshold", add_with("lowStockThreshold", Value::Null), S::UNPROCESSABLE_ENTITY, "lowStockThreshold: invalid type: null"),
        // Restocking an existing product.
        restock("restock of zero", json!({"quantity": 0}), S::UNPROCESSABLE_ENTITY, "quantity: must be a whole number from 1 to 1000000, got 0"),
        restock("negative restock", json!({"quantity": -5}), S::UNPROCESSABLE_ENTITY, "quantity: must be a whole number from 1 to 1000000, got -5"),
        restock("restock over the maximum", json!({"quantity": 1_000_001}), S::UNPROCESSABLE_ENTITY, "quantity: must be a whole number from 1 to 1000000, got 1000001"),
        restock("fractional restock", json!({"quantity": 2.5}), S::UNPROCESSABLE_ENTITY, "quantity: invalid type: floating point"),
        restock("restock quantity as a string", json!({"quantity": "5"}), S::UNPROCESSABLE_ENTITY, "quantity: invalid type: string"),
        restock("restock without quantity", json!({}), S::UNPROCESSABLE_ENTITY, "missing field `quantity`"),
        restock("restock with an unknown field", json!({"quantity": 5, "note": "x"}), S::UNPROCESSABLE_ENTITY, "unknown field `note`"),
        post("restock with malformed JSON", RESTOCK, raw(r#"{"quantity": 5"#), S::BAD_REQUEST, "malformed JSON"),
        post("restock as text/plain", RESTOCK, text(r#"{"quantity": 5}"#), S::UNSUPPORTED_MEDIA_TYPE, "Content-Type: application/json")
            .with_headers(&[("content-type", "text/plain")]),
        post("restock of an impossible id", "/inventory/products/a%20b/restock", Body::Json(json!({"quantity": 5})), S::NOT_FOUND, "product 'a b' not found"),
        // Routes and methods.
        get("unknown route", "/inventory/widgets", S::NOT_FOUND, "no such route"),
        get("trailing slash", "/inventory/products/p-1/", S::NOT_FOUND, "no such route"),
        Case::new("DELETE on a product", Method::DELETE, "/inventory/products/p-1", Body::None, S::METHOD_NOT_ALLOWED, "method not allowed"),
        Case::new("PUT on the product list", Method::PUT, PRODUCTS, Body::Json(valid_add()), S::METHOD_NOT_ALLOWED, "method not allowed"),
        get("GET of restock", RESTOCK, S::METHOD_NOT_ALLOWED, "method not allowed"),
        get("product id with a space in the path", "/inventory/products/a%20b", S::NOT_FOUND, "product 'a b' not found"),
        get("product id with a slash in the path", "/inventory/products/a%2Fb", S::NOT_FOUND, "product 'a/b' not found"),
        get("product id of 65 characters in the path", &format!("/inventory/products/{}", "x".repeat(65)), S::NOT_FOUND, "not found"),
        // Listing.
        get("limit 0", "/inventory/products?limit=0", S::UNPROCESSABLE_ENTITY, "limit must be from 1 to 100, got 0"),
        get("limit 101", "/inventory/products?limit=101", S::UNPROCESSABLE_ENTITY, "limit must be from 1 to 100, got 101"),
        get("limit abc", "/inventory/products?limit=abc", S::UNPROCESSABLE_ENTITY, "invalid query parameter 'limit'"),
        get("negative limit", "/inventory/products?limit=-1", S::UNPROCESSABLE_ENTITY, "invalid query parameter 'limit'"),
        get("garbage cursor", "/inventory/products?cursor=%%%not-a-cursor", S::UNPROCESSABLE_ENTITY, "cursor is not valid"),
        // A cursor is a product id (the last of the previous page); these are none.
        get("cursor of an impossible id", "/inventory/products?cursor=a%20b", S::UNPROCESSABLE_ENTITY, "cursor is not valid"),
        get("empty cursor", "/inventory/products?cursor=", S::UNPROCESSABLE_ENTITY, "cursor is not valid"),
        get("cursor over 64 characters", &format!("{PRODUCTS}?cursor={}", "p".repeat(65)), S::UNPROCESSABLE_ENTITY, "cursor is not valid"),
    ]
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_clear_message_and_leave_no_event() {
    let app = spawn_app().await;
    let product = app.given_product("p-1", 10, 2).await;
    let events_before = app.count_events().await;
    let cases = cases();
    assert!(cases.len() >= 20, "a table worth its name");

    for case in cases {
        let answer = app.send(case.method.clone(), &case.path, case.headers, case.body.clone()).await;
        let label = format!("{} ({} {})", case.label, case.method, case.path);
        let message = answer.error(case.status, &label);
        assert!(message.contains(case.fragment), "[{label}] message {message:?} lacks {:?}", case.fragment);
        if case.status == StatusCode::UNPROCESSABLE_ENTITY {
            assert!(!message.contains(" at line "), "[{label}] a field path says more than a position: {message:?}");
        }
        assert_eq!(app.count_events().await, events_before, "[{label}] a refused request records no event");
    }

    assert_eq!(*app.get_product("p-1").await.data(StatusCode::OK), product, "the existing product is untouched");
    assert_eq!(app.get_product("p-2").await.status, StatusCode::NOT_FOUND, "no refused add created p-2");
}

#[tokio::test]
async fn a_body_at_the_limit_is_read_and_judged_on_its_content() {
    let app = spawn_app().await;
    let mut body = json!({"productId": "p-2", "name": "Cup", "quantity": 5, "padding": ""}).to_string();
    let padding = BODY_LIMIT_BYTES - body.len();
    body = body.replace(r#""padding":"""#, &format!(r#""padding":"{}""#, "x".repeat(padding)));
    assert_eq!(body.len(), BODY_LIMIT_BYTES);

    let answer = app.send(Method::POST, PRODUCTS, &[], Body::Raw(JSON, body)).await;

    let message = answer.error(StatusCode::UNPROCESSABLE_ENTITY, "at the limit");
    assert!(message.contains("unknown field `padding`"), "the body was parsed, not refused for its size: {message}");
}

#[tokio::test]
async fn a_body_with_text_after_the_json_document_is_malformed_and_stores_nothing() {
    let app = spawn_app().await;
    app.given_product("p-1", 10, 2).await;
    let events_before = app.count_events().await;
    let cases = [
        ("text after the document", PRODUCTS, r#"{"productId": "p-2", "name": "Cup", "quantity": 5} x"#),
        ("two documents", RESTOCK, r#"{"quantity": 5}{"quantity": 7}"#),
    ];

    for (label, path, text) in cases {
        let answer = app.send(Method::POST, path, &[], Body::Raw(JSON, text.to_owned())).await;
        let message = answer.error(StatusCode::BAD_REQUEST, label);
        assert!(message.contains("malformed JSON"), "[{label}] {message}");
        assert_eq!(app.count_events().await, events_before, "[{label}] a refused request records no event");
    }
}

#[tokio::test]
async fn a_positional_array_instead_of_an_object_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    app.given_product("p-1", 10, 2).await;
    let events_before = app.count_events().await;
    let cases =
        [("positional product", PRODUCTS, json!(["p-2", "Cup", 5, 1])), ("positional restock", RESTOCK, json!([5]))];

    for (label, path, body) in cases {
        let answer = app.send(Method::POST, path, &[], Body::Json(body)).await;
        let message = answer.error(StatusCode::UNPROCESSABLE_ENTITY, label);
        assert!(message.starts_with("body: "), "[{label}] the message names the body: {message}");
        assert_eq!(app.count_events().await, events_before, "[{label}] a refused request records no event");
    }
}
