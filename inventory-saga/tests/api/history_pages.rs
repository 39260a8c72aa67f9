//! `/events` of a product in pages, as for orders.

use reqwest::{Method, StatusCode};

use crate::helpers::{Body, spawn_app};

#[tokio::test]
async fn a_product_history_comes_in_pages_with_a_next_link() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    for _ in 0..2 {
        app.restock("mug", 1).await.data(StatusCode::OK);
    }
    let first = app.send(Method::GET, "/inventory/products/mug/events?limit=2", &[], Body::None).await;
    assert_eq!(first.header("link"), Some("</inventory/products/mug/events?from=3&limit=2>; rel=\"next\""));
    assert_eq!(first.data(StatusCode::OK).as_array().map(Vec::len), Some(2));
    let last = app.send(Method::GET, "/inventory/products/mug/events?from=3&limit=2", &[], Body::None).await;
    assert_eq!(last.header("link"), None, "the last page has no next");
    assert_eq!(last.data(StatusCode::OK)[0]["sequence"], 3);
    let refused = app.send(Method::GET, "/inventory/products/mug/events?limit=1001", &[], Body::None).await;
    refused.error(StatusCode::UNPROCESSABLE_ENTITY, "limit over 1000");
    let unknown = app.send(Method::GET, "/inventory/products/nothing/events?from=2", &[], Body::None).await;
    unknown.error(StatusCode::NOT_FOUND, "unknown product");
}
