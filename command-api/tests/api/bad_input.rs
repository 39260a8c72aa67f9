//! Bad input is refused, never stored: each case gets the status that fits, the error
//! envelope, a message naming the problem, and leaves the event store as it was.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{BODY_LIMIT_BYTES, Body, TestApp, order_id, spawn_app};

/// One refused request. `{id}` in the path stands for an existing order.
struct Case {
    label: &'static str,
    method: Method,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Body,
    status: StatusCode,
    fragment: &'static str,
}

fn post(label: &'static str, body: Value, status: StatusCode, fragment: &'static str) -> Case {
    Case { label, method: Method::POST, path: "/oms/orders", headers: vec![], body: Body::Json(body), status, fragment }
}

fn put(label: &'static str, body: Value, status: StatusCode, fragment: &'static str) -> Case {
    Case {
        label,
        method: Method::PUT,
        path: "/oms/orders/{id}",
        headers: vec![],
        body: Body::Json(body),
        status,
        fragment,
    }
}

fn get(label: &'static str, path: &'static str, status: StatusCode, fragment: &'static str) -> Case {
    Case { label, method: Method::GET, path, headers: vec![], body: Body::None, status, fragment }
}

fn raw(
    label: &'static str,
    method: Method,
    path: &'static str,
    body: Body,
    status: StatusCode,
    fragment: &'static str,
) -> Case {
    Case { label, method, path, headers: vec![], body, status, fragment }
}

impl Case {
    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A valid placement with `items` as its `orderItems`.
fn order_of(items: Value) -> Value {
    json!({"userId": "alice", "orderItems": items})
}

/// A valid placement.
fn good_order() -> Value {
    order_of(json!([{"productId": "mug", "quantity": 1}]))
}

/// `n` distinct valid lines.
fn lines(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({"productId": format!("p-{i}"), "quantity": 1})).collect())
}

/// Runs every case against an app holding one order, asserting each is refused as
/// expected and that nothing is stored.
async fn assert_all_refused(cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let app = spawn_app().await;
    let order = app.place_order("alice", &[("mug", 2), ("tea", 1)]).await;
    let id = order_id(&order);
    let events = app.count_events().await;
    for case in cases {
        assert_refused(&app, &id, case).await;
    }
    assert_eq!(app.count_events().await, events, "only the order placed first is stored");
    assert_eq!(app.get_order(&id).await.data(StatusCode::OK), &order, "refused requests left the order unchanged");
}

async fn assert_refused(app: &TestApp, id: &str, case: Case) {
    let label = case.label;
    let path = case.path.replace("{id}", id);
    let headers: Vec<(&str, &str)> = case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let events_before = app.count_events().await;

    let answer = app.send(case.method.clone(), &path, &headers, case.body).await;

    let message = answer.error(case.status, label);
    assert!(message.contains(case.fragment), "[{label}] message {message:?} should contain {:?}", case.fragment);
    if case.status == StatusCode::UNPROCESSABLE_ENTITY {
        assert!(
            !message.contains(" at line "),
            "[{label}] message {message:?} should name the field, not a parser position"
        );
    }
    assert_eq!(app.count_events().await, events_before, "[{label}] a refused request left events behind");
}

#[tokio::test]
async fn bad_placements_are_refused_with_a_message_naming_the_problem() {
    let too_large = format!(
        r#"{{"userId": "{}", "orderItems": [{{"productId": "mug", "quantity": 1}}]}}"#,
        "a".repeat(BODY_LIMIT_BYTES)
    );
    assert_all_refused(vec![
        raw("malformed JSON", Method::POST, "/oms/orders", Body::Raw("application/json", r#"{"userId": "alice","#.into()), StatusCode::BAD_REQUEST, "malformed JSON"),
        raw("empty body", Method::POST, "/oms/orders", Body::Raw("application/json", String::new()), StatusCode::BAD_REQUEST, "malformed JSON"),
        raw("wrong content type", Method::POST, "/oms/orders", Body::Raw("text/plain", good_order().to_string()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type: application/json"),
        raw("no body and no content type", Method::POST, "/oms/orders", Body::None, StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
        raw("body over the limit", Method::POST, "/oms/orders", Body::Raw("application/json", too_large), StatusCode::PAYLOAD_TOO_LARGE, "too large"),
        post("a JSON array of an order", json!([good_order()]), StatusCode::UNPROCESSABLE_ENTITY, "expected a JSON object"),
        post("a JSON string", json!("alice wants a mug"), StatusCode::UNPROCESSABLE_ENTITY, "body: expected a JSON object"),
        post("null body", Value::Null, StatusCode::UNPROCESSABLE_ENTITY, "body: expected a JSON object"),
        post("missing userId", json!({"orderItems": [{"productId": "mug", "quantity": 1}]}), StatusCode::UNPROCESSABLE_ENTITY, "missing field `userId`"),
        post("empty userId", json!({"userId": "", "orderItems": [{"productId": "mug", "quantity": 1}]}), StatusCode::UNPROCESSABLE_ENTITY, "userId: must not be empty"),
        post("blank userId", json!({"userId": "   ", "orderItems": [{"productId": "mug", "quantity": 1}]}), StatusCode::UNPROCESSABLE_ENTITY, "userId: must not be empty"),
        post("userId with spaces", json!({"userId": "al ice", "orderItems": [{"productId": "mug", "quantity": 1}]}), StatusCode::UNPROCESSABLE_ENTITY, "userId: must contain only"),
        post("userId over 128 characters", json!({"userId": "u".repeat(129), "orderItems": [{"productId": "mug", "quantity": 1}]}), StatusCode::UNPROCESSABLE_ENTITY, "userId: must be at most 128"),
        post("userId a number", json!({"userId": 42, "orderItems": [{"productId": "mug", "quantity": 1}]}), StatusCode::UNPROCESSABLE_ENTITY, "userId: invalid type"),
        post("missing orderItems", json!({"userId": "alice"}), StatusCode::UNPROCESSABLE_ENTITY, "missing field `orderItems`"),
        post("empty orderItems", order_of(json!([])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems must contain at least one item"),
        post("orderItems not a list", order_of(json!({"productId": "mug", "quantity": 1})), StatusCode::UNPROCESSABLE_ENTITY, "orderItems: invalid type"),
        post("quantity 0", order_of(json!([{"productId": "mug", "quantity": 0}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].quantity: must be a whole number from 1 to 1000000, got 0"),
        post("negative quantity", order_of(json!([{"productId": "mug", "quantity": -3}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].quantity: must be a whole number from 1 to 1000000, got -3"),
        post("fractional quantity", order_of(json!([{"productId": "mug", "quantity": 2.5}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].quantity: invalid type"),
        post("quantity as a string", order_of(json!([{"productId": "mug", "quantity": "3"}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].quantity: invalid type"),
        post("quantity over a million", order_of(json!([{"productId": "mug", "quantity": 1}, {"productId": "tea", "quantity": 1_000_001}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[1].quantity: must be a whole number from 1 to 1000000, got 1000001"),
        post("quantity beyond 64 bits", order_of(json!([{"productId": "mug", "quantity": u64::MAX}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].quantity"),
        post("missing quantity", order_of(json!([{"productId": "mug"}])), StatusCode::UNPROCESSABLE_ENTITY, "missing field `quantity`"),
        post("productId with a slash", order_of(json!([{"productId": "mugs/blue", "quantity": 1}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].productId: must contain only letters, digits and . _ : -"),
        post("productId with spaces", order_of(json!([{"productId": "blue mug", "quantity": 1}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].productId: must contain only"),
        post("empty productId", order_of(json!([{"productId": "", "quantity": 1}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].productId: must not be empty"),
        post("productId over 64 characters", order_of(json!([{"productId": "p".repeat(65), "quantity": 1}])), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].productId: must be at most 64"),
        post("the same product twice", order_of(json!([{"productId": "mug", "quantity": 1}, {"productId": "tea", "quantity": 1}, {"productId": "mug", "quantity": 2}])), StatusCode::UNPROCESSABLE_ENTITY, "product 'mug' appears more than once"),
        raw("the same field twice", Method::POST, "/oms/orders", Body::Raw("application/json", r#"{"userId": "alice", "userId": "bob", "orderItems": [{"productId": "mug", "quantity": 1}]}"#.into()), StatusCode::UNPROCESSABLE_ENTITY, "duplicate field `userId`"),
        post("unknown top-level field", json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 1}], "coupon": "FREE"}), StatusCode::UNPROCESSABLE_ENTITY, "unknown field `coupon`"),
        post("unknown item field", order_of(json!([{"productId": "mug", "quantity": 1, "price": 0}])), StatusCode::UNPROCESSABLE_ENTITY, "unknown field `price`"),
        post("101 items", order_of(lines(101)), StatusCode::UNPROCESSABLE_ENTITY, "at most 100 items"),
        post("Idempotency-Key of 300 characters", good_order(), StatusCode::UNPROCESSABLE_ENTITY, "Idempotency-Key must be 1 to 255 visible ASCII characters").with_header("idempotency-key", "k".repeat(300)),
        post("empty Idempotency-Key", good_order(), StatusCode::UNPROCESSABLE_ENTITY, "Idempotency-Key").with_header("idempotency-key", ""),
        post("Idempotency-Key with a space", good_order(), StatusCode::UNPROCESSABLE_ENTITY, "Idempotency-Key").with_header("idempotency-key", "two words"),
    ])
    .await;
}

#[tokio::test]
async fn bad_updates_are_refused_with_a_message_naming_the_problem() {
    let too_large =
        format!(r#"{{"orderItems": [{{"productId": "{}", "quantity": 1}}]}}"#, "p".repeat(BODY_LIMIT_BYTES));
    assert_all_refused(vec![
        raw("malformed JSON", Method::PUT, "/oms/orders/{id}", Body::Raw("application/json", "{status: CANCELED}".into()), StatusCode::BAD_REQUEST, "malformed JSON"),
        raw("wrong content type", Method::PUT, "/oms/orders/{id}", Body::Raw("application/x-www-form-urlencoded", "status=CANCELED".into()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
        raw("body over the limit", Method::PUT, "/oms/orders/{id}", Body::Raw("application/json", too_large), StatusCode::PAYLOAD_TOO_LARGE, "too large"),
        put("empty object", json!({}), StatusCode::UNPROCESSABLE_ENTITY, "nothing to update"),
        put("empty orderItems and no status", json!({"orderItems": []}), StatusCode::UNPROCESSABLE_ENTITY, "nothing to update"),
        put("null status alone", json!({"status": null}), StatusCode::UNPROCESSABLE_ENTITY, "nothing to update"),
        put("status PENDING", json!({"status": "PENDING"}), StatusCode::UNPROCESSABLE_ENTITY, "status: PENDING is set by the system"),
        put("status EXECUTED", json!({"status": "EXECUTED"}), StatusCode::UNPROCESSABLE_ENTITY, "status: EXECUTED is set by the system"),
        put("status PARTIALLY_EXECUTED", json!({"status": "PARTIALLY_EXECUTED"}), StatusCode::UNPROCESSABLE_ENTITY, "status: PARTIALLY_EXECUTED is set by the system"),
        put("unknown status", json!({"status": "REFUNDED"}), StatusCode::UNPROCESSABLE_ENTITY, "status: unknown variant `REFUNDED`"),
        put("lowercase status", json!({"status": "canceled"}), StatusCode::UNPROCESSABLE_ENTITY, "status: unknown variant `canceled`"),
        put("item status EXECUTED", json!({"orderItems": [{"productId": "mug", "status": "EXECUTED"}]}), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].status: a client cannot set an item to EXECUTED"),
        put("item quantity and CANCELED together", json!({"orderItems": [{"productId": "tea", "quantity": 1}, {"productId": "mug", "quantity": 3, "status": "CANCELED"}]}), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[1]: give either a quantity or status CANCELED, not both"),
        put("item with neither quantity nor status", json!({"orderItems": [{"productId": "mug"}]}), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0]: give a quantity to set, or status CANCELED"),
        put("cancel of an item not in the order", json!({"orderItems": [{"productId": "plate", "status": "CANCELED"}]}), StatusCode::UNPROCESSABLE_ENTITY, "product 'plate' is not an item of this order"),
        put("the same product twice", json!({"orderItems": [{"productId": "mug", "quantity": 3}, {"productId": "mug", "status": "CANCELED"}]}), StatusCode::UNPROCESSABLE_ENTITY, "product 'mug' appears more than once"),
        put("item quantity 0", json!({"orderItems": [{"productId": "mug", "quantity": 0}]}), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].quantity: must be a whole number"),
        put("item productId with a slash", json!({"orderItems": [{"productId": "a/b", "quantity": 1}]}), StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0].productId"),
        put("unknown field", json!({"status": "CANCELED", "reason": "changed my mind"}), StatusCode::UNPROCESSABLE_ENTITY, "unknown field `reason`"),
        put("more than 100 items after adding", json!({"orderItems": lines(99)}), StatusCode::UNPROCESSABLE_ENTITY, "at most 100 items"),
        // A refused item change refuses the whole update, the status with it.
        put("valid status with an invalid item", json!({"status": "CANCELED", "orderItems": [{"productId": "plate", "status": "CANCELED"}]}), StatusCode::UNPROCESSABLE_ENTITY, "product 'plate' is not an item of this order"),
    ])
    .await;
}

#[tokio::test]
async fn bad_list_parameters_are_refused_with_a_message_naming_the_parameter() {
    assert_all_refused(vec![
        get("limit 0", "/oms/orders?limit=0", StatusCode::UNPROCESSABLE_ENTITY, "limit must be from 1 to 100, got 0"),
        get(
            "limit 101",
            "/oms/orders?limit=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit must be from 1 to 100, got 101",
        ),
        get(
            "limit not a number",
            "/oms/orders?limit=abc",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid query parameter 'limit'",
        ),
        get(
            "negative limit",
            "/oms/orders?limit=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid query parameter 'limit'",
        ),
        get(
            "unknown status",
            "/oms/orders?status=FOO",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid query parameter 'status'",
        ),
        get(
            "blank userId",
            "/oms/orders?userId=%20",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid query parameter 'userId'",
        ),
        get(
            "userId with a space",
            "/oms/orders?userId=al%20ice",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid query parameter 'userId'",
        ),
        get(
            "cursor garbage",
            "/oms/orders?cursor=%21%21not-a-cursor%21%21",
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor is not valid",
        ),
        get(
            "cursor of base64 text that is no position",
            "/oms/orders?cursor=eWVzdGVyZGF5",
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor is not valid",
        ),
    ])
    .await;
}

#[tokio::test]
async fn unknown_routes_methods_and_ids_are_refused_in_the_envelope() {
    assert_all_refused(vec![
        get("unknown route", "/oms/nothing-here", StatusCode::NOT_FOUND, "no such route"),
        get("unknown route under an order", "/oms/orders/{id}/items", StatusCode::NOT_FOUND, "no such route"),
        raw(
            "DELETE an order",
            Method::DELETE,
            "/oms/orders/{id}",
            Body::None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        raw(
            "PATCH the collection",
            Method::PATCH,
            "/oms/orders",
            Body::Json(good_order()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        raw(
            "POST to an order",
            Method::POST,
            "/oms/orders/{id}",
            Body::Json(good_order()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        raw(
            "POST to the history",
            Method::POST,
            "/oms/orders/{id}/events",
            Body::Json(good_order()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        get("GET a non-UUID order id", "/oms/orders/not-a-uuid", StatusCode::NOT_FOUND, "order 'not-a-uuid' not found"),
        get(
            "GET the history of a non-UUID order id",
            "/oms/orders/12345/events",
            StatusCode::NOT_FOUND,
            "order '12345' not found",
        ),
        raw(
            "PUT a non-UUID order id",
            Method::PUT,
            "/oms/orders/not-a-uuid",
            Body::Json(json!({"status": "CANCELED"})),
            StatusCode::NOT_FOUND,
            "order 'not-a-uuid' not found",
        ),
    ])
    .await;
}

/// Cursors the service would never hand out, though shaped like its own: a time before
/// 1970 or beyond 17 digits of microseconds (a time before 4713 BC would be valid for
/// chrono but out of PostgreSQL's timestamptz range), digits or an id not written as
/// the service writes them, and the opaque form of an earlier release.
#[tokio::test]
async fn a_forged_cursor_is_refused_as_invalid() {
    let app = spawn_app().await;
    app.place_order("alice", &[("mug", 1)]).await;
    let events = app.count_events().await;
    let id = "6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b";
    let old_release = projections::Cursor::new(format!("1796140800000000|{id}")).encode();
    for cursor in [
        format!("-1000000000000000000.{id}"),
        format!("100000000000000000.{id}"),
        format!("01796140800000000.{id}"),
        format!("+1796140800000000.{id}"),
        format!("1796140800000000.{}", id.to_uppercase()),
        format!("1796140800000000.{}", id.replace('-', "")),
        format!("1796140800000000|{id}"),
        format!("1796140800000000.{id}."),
        old_release,
    ] {
        let answer = app.list(&format!("cursor={}", cursor.replace('+', "%2B").replace('|', "%7C"))).await;
        let message = answer.error(StatusCode::UNPROCESSABLE_ENTITY, &cursor);
        assert!(message.contains("cursor is not valid"), "cursor {cursor}: {message:?} should name the cursor");
    }
    assert_eq!(app.count_events().await, events);
}

/// Every cursor written as the service writes them is a position, even one no page
/// ended at: the page after it (here: the orders placed before it).
#[tokio::test]
async fn any_cursor_of_the_documented_form_is_a_position() {
    let app = spawn_app().await;
    app.place_order("alice", &[("mug", 1)]).await;
    for (cursor, items) in
        [("0.00000000-0000-0000-0000-000000000000", 0), ("99999999999999999.ffffffff-ffff-ffff-ffff-ffffffffffff", 1)]
    {
        let page = app.list(&format!("cursor={cursor}")).await;
        assert_eq!(page.data(StatusCode::OK)["items"].as_array().map(Vec::len), Some(items), "cursor {cursor}");
    }
}

/// serde lets a struct be read from a JSON array of its fields in order; the contract's
/// bodies are objects with named fields, and nothing else should place or change an order.
#[tokio::test]
async fn bodies_and_items_written_as_positional_arrays_are_refused() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("bob", &[("mug", 1)]).await);
    let cases = [
        ("POST body as an array", Method::POST, "/oms/orders".to_owned(), json!(["alice", [["mug", 2]]])),
        (
            "POST item as an array",
            Method::POST,
            "/oms/orders".to_owned(),
            json!({"userId": "alice", "orderItems": [["mug", 2]]}),
        ),
        ("PUT body as an array", Method::PUT, format!("/oms/orders/{id}"), json!([null, [["mug", 3, null]]])),
    ];
    for (label, method, path, body) in cases {
        let answer = app.send(method, &path, &[], Body::Json(body)).await;
        let message = answer.error(StatusCode::UNPROCESSABLE_ENTITY, label);
        assert!(
            message.contains("expected") && message.contains("object"),
            "[{label}] message {message:?} should say an object was expected"
        );
    }
    assert_eq!(app.count_events().await, 1, "nothing but bob's order stored");
}
