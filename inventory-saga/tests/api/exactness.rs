//! The API document states exactly the rules the inventory service enforces on a
//! request's shape: each value of these tables is allowed by the document exactly when
//! the service accepts it (answers neither 400 nor 422; a 404, 409 or 412 is about what
//! is stored, not about the request). `scripts/test` fuzzes the same with schemathesis;
//! the tables pin the values where the two once differed.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_document_allows_exactly_the_parameters_the_service_accepts() {
    let app = spawn_app().await;
    let document = app.openapi().await;
    app.given_product("mug", 10, 2).await;

    let get = ("get", "/inventory/products/{productId}");
    for value in
        ["1", "0", "01", "", "2026-12-01T10:00:00Z", "2026-12-01 10:00:00Z", "2026-02-29T00:00:00Z", "tomorrow"]
    {
        app.assert_parameter_exact(&document, get, "asOf", ("/inventory/products/mug", None), value).await;
    }

    let (long, too_long) = ("p".repeat(64), "p".repeat(65));
    let list = ("get", "/inventory/products");
    for value in ["mug", "a.b:c_d-e", &long, &too_long, "", "a b", "é", "bXVn"] {
        app.assert_parameter_exact(&document, list, "cursor", ("/inventory/products", None), value).await;
    }

    let unchanged = json!({"name": "Product mug"});
    let put = ("put", "/inventory/products/{productId}");
    for value in [r#""1""#, "*", r#"W/"1""#, r#""1", "2""#, "", "1", r#""1" "2""#] {
        app.assert_parameter_exact(&document, put, "If-Match", ("/inventory/products/mug", Some(&unchanged)), value)
            .await;
    }

    let restock = json!({"quantity": 1});
    let (long, too_long) = ("k".repeat(255), "k".repeat(256));
    let post = ("post", "/inventory/products/{productId}/restock");
    for value in ["k-1", "!~", &long, &too_long, "", "a b"] {
        let request = ("/inventory/products/mug/restock", Some(&restock));
        app.assert_parameter_exact(&document, post, "Idempotency-Key", request, value).await;
    }
}

#[tokio::test]
async fn the_document_allows_exactly_the_bodies_the_service_accepts() {
    let app = spawn_app().await;
    let document = app.openapi().await;
    app.given_product("mug", 10, 2).await;

    let add = ("post", "/inventory/products");
    for (index, (name, quantity, threshold)) in [
        (json!("Mug"), json!(5.0), json!(1.0)),
        (json!("Mug"), json!(4_294_967_295_u64), json!(0)),
        (json!("Mug"), json!(4_294_967_296_u64), json!(0)),
        (json!("Mug"), json!(-1), json!(0)),
        (json!("Mug"), json!(2.5), json!(0)),
        (json!(" "), json!(1), json!(0)),
        (json!("\u{3000}"), json!(1), json!(0)),
        (json!("a\u{7}b"), json!(1), json!(0)),
        (json!("a\u{85}"), json!(1), json!(0)),
        (json!("\u{feff}"), json!(1), json!(0)),
        (json!(" Mug "), json!(1), json!(0)),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"productId": format!("p-{index}"), "name": name, "quantity": quantity, "lowStockThreshold": threshold});
        app.assert_body_exact(&document, add, "/inventory/products", &body).await;
    }

    let put = ("put", "/inventory/products/{productId}");
    for body in [
        json!({}),
        json!({"name": null}),
        json!({"name": null, "lowStockThreshold": null}),
        json!({"lowStockThreshold": 3.0}),
        json!({"name": " "}),
        json!({"name": "Big mug", "lowStockThreshold": null}),
    ] {
        app.assert_body_exact(&document, put, "/inventory/products/mug", &body).await;
    }

    let adjust = ("post", "/inventory/products/{productId}/adjustments");
    for quantity in [json!(0), json!(-0.0), json!(3.0), json!(1_000_000), json!(1_000_001), json!(-1.5)] {
        let body = json!({"quantity": quantity, "reason": "FOUND"});
        app.assert_body_exact(&document, adjust, "/inventory/products/mug/adjustments", &body).await;
    }
    let restock = ("post", "/inventory/products/{productId}/restock");
    for quantity in [json!(1.0), json!(0), json!(1_000_000), json!(1_000_001)] {
        app.assert_body_exact(&document, restock, "/inventory/products/mug/restock", &json!({"quantity": quantity}))
            .await;
    }
}
