//! Client concurrency control on products: `GET` answers `ETag: "<version>"`, a
//! restock with `If-Match` applies only while the product is still at that version,
//! and a stale one is 412 with nothing stored.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_restock_with_a_stale_if_match_is_412_and_stores_nothing() {
    let app = spawn_app().await;
    app.given_product("mug", 10, 2).await;
    let read = app.get_product("mug").await;
    assert_eq!(read.header("etag"), Some("\"1\""));

    let first = app.restock_with("mug", 5, &[("if-match", "\"1\"")]).await;
    assert_eq!(first.data(StatusCode::OK)["available"], 15);
    assert_eq!(first.header("etag"), Some("\"2\""), "the write answers the new version");
    let events = app.count_events().await;
    let second = app.restock_with("mug", 5, &[("if-match", "\"1\"")]).await;
    let message = second.error(StatusCode::PRECONDITION_FAILED, "stale If-Match");
    assert!(message.contains("version 2"), "{message}");
    assert_eq!(app.count_events().await, events, "nothing stored");
    assert_eq!(app.get_product("mug").await.data(StatusCode::OK)["available"], 15, "the first restock stands");

    let current = app.restock_with("mug", 5, &[("if-match", "\"2\"")]).await;
    assert_eq!(current.data(StatusCode::OK)["available"], 20);
    let malformed = app.restock_with("mug", 5, &[("if-match", "2")]).await;
    malformed.error(StatusCode::BAD_REQUEST, "not an entity tag");
    let unknown = app.restock_with("no-such-product", 5, &[("if-match", "\"1\"")]).await;
    unknown.error(StatusCode::NOT_FOUND, "If-Match on a product that does not exist");
}
