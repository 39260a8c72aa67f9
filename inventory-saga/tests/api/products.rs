//! The product contract route by route: add, get, restock, and the stock status.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Body, event_types, spawn_app};

#[tokio::test]
async fn adding_a_product_answers_201_with_the_product_in_the_envelope() {
    let app = spawn_app().await;

    let answer =
        app.add_product(&json!({"productId": "mug-1", "name": "Mug", "quantity": 100, "lowStockThreshold": 10})).await;

    let product = answer.data(StatusCode::CREATED);
    assert_eq!(
        *product,
        json!({
            "productId": "mug-1",
            "name": "Mug",
            "available": 100,
            "reserved": 0,
            "onHand": 100,
            "shipped": 0,
            "lowStockThreshold": 10,
            "stockStatus": "IN_STOCK",
            "version": 1,
        })
    );
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(app.count_events().await, 1);
}

#[tokio::test]
async fn getting_a_product_returns_what_adding_it_returned() {
    let app = spawn_app().await;
    let added = app.given_product("sku-42.blue:XL_1", 7, 3).await;

    let fetched = app.get_product("sku-42.blue:XL_1").await;

    assert_eq!(*fetched.data(StatusCode::OK), added);
    assert_eq!(added["productId"], "sku-42.blue:XL_1");
    assert_eq!(added["available"], 7);
}

#[tokio::test]
async fn adding_a_product_whose_id_is_taken_is_a_conflict_naming_the_id_and_records_nothing() {
    let app = spawn_app().await;
    let original = app.given_product("p-1", 5, 1).await;

    let again = app.add_product(&json!({"productId": "p-1", "name": "Impostor", "quantity": 999})).await;

    let message = again.error(StatusCode::CONFLICT, "id taken");
    assert!(message.contains("'p-1'"), "the message names the id: {message}");
    assert!(message.contains("already exists"), "the message says why: {message}");
    assert_eq!(app.count_events().await, 1, "a refused add records no event");
    assert_eq!(*app.get_product("p-1").await.data(StatusCode::OK), original, "the first product is untouched");
}

#[tokio::test]
async fn getting_an_unknown_product_is_404_naming_it() {
    let app = spawn_app().await;
    app.given_product("p-1", 5, 1).await;

    let answer = app.get_product("p-2").await;

    let message = answer.error(StatusCode::NOT_FOUND, "unknown product");
    assert_eq!(message, "product 'p-2' not found");
}

#[tokio::test]
async fn restocking_adds_units_and_bumps_the_version() {
    let app = spawn_app().await;
    app.given_product("p-1", 10, 2).await;

    let first = app.restock("p-1", 5).await.data(StatusCode::OK).clone();
    let second = app.restock("p-1", 1_000_000).await.data(StatusCode::OK).clone();

    assert_eq!((first["available"].clone(), first["version"].clone()), (json!(15), json!(2)));
    assert_eq!(
        second,
        json!({
            "productId": "p-1",
            "name": "Product p-1",
            "available": 1_000_015,
            "reserved": 0,
            "onHand": 1_000_015,
            "shipped": 0,
            "lowStockThreshold": 2,
            "stockStatus": "IN_STOCK",
            "version": 3,
        })
    );
    assert_eq!(*app.get_product("p-1").await.data(StatusCode::OK), second, "GET reads the restock's write");
    assert_eq!(app.count_events().await, 3);
}

#[tokio::test]
async fn restocking_an_unknown_product_is_404_naming_it_and_records_nothing() {
    let app = spawn_app().await;
    app.given_product("p-1", 10, 2).await;

    let answer = app.restock("ghost", 5).await;

    assert_eq!(answer.error(StatusCode::NOT_FOUND, "restock unknown"), "product 'ghost' not found");
    assert_eq!(app.count_events().await, 1);
    assert_eq!(app.get_product("ghost").await.status, StatusCode::NOT_FOUND, "a restock does not create a product");
}

#[tokio::test]
async fn stock_status_follows_available_units_against_the_threshold() {
    let app = spawn_app().await;
    // (quantity, lowStockThreshold, stockStatus)
    let cases = [
        (50, 10, "IN_STOCK"),
        (11, 10, "IN_STOCK"),
        (10, 10, "LOW_STOCK"),
        (1, 10, "LOW_STOCK"),
        (0, 10, "OUT_OF_STOCK"),
        (1, 0, "IN_STOCK"),
        (0, 0, "OUT_OF_STOCK"),
    ];

    for (i, (quantity, threshold, status)) in cases.into_iter().enumerate() {
        let product = app.given_product(&format!("p-{i}"), quantity, threshold).await;
        assert_eq!(product["stockStatus"], status, "{quantity} units, threshold {threshold}: {product}");
        assert_eq!(product["available"], quantity, "{quantity} units, threshold {threshold}");
    }
}

#[tokio::test]
async fn restocking_an_out_of_stock_product_brings_it_back_low_or_in_stock() {
    let app = spawn_app().await;
    app.given_product("a-little", 0, 10).await;
    app.given_product("a-lot", 0, 10).await;

    let low = app.restock("a-little", 4).await.data(StatusCode::OK).clone();
    let plenty = app.restock("a-lot", 11).await.data(StatusCode::OK).clone();

    assert_eq!((low["available"].clone(), low["stockStatus"].clone()), (json!(4), json!("LOW_STOCK")));
    assert_eq!((plenty["available"].clone(), plenty["stockStatus"].clone()), (json!(11), json!("IN_STOCK")));
    assert_eq!(
        event_types(&app.history("a-little").await),
        ["ProductAdded", "OutOfStock", "StockRestocked", "BackInStock"]
    );
    assert_eq!(low["version"], 4, "the version counts the alerts too");
}

#[tokio::test]
async fn restocking_a_low_product_above_its_threshold_puts_it_back_in_stock() {
    let app = spawn_app().await;
    let low = app.given_product("p-1", 5, 10).await;

    let restocked = app.restock("p-1", 6).await.data(StatusCode::OK).clone();

    assert_eq!(low["stockStatus"], "LOW_STOCK");
    assert_eq!((restocked["available"].clone(), restocked["stockStatus"].clone()), (json!(11), json!("IN_STOCK")));
}

#[tokio::test]
async fn the_low_stock_threshold_is_optional_and_defaults_to_zero() {
    let app = spawn_app().await;

    let answer = app.add_product(&json!({"productId": "p-1", "name": "Mug", "quantity": 1})).await;

    let product = answer.data(StatusCode::CREATED);
    assert_eq!(product["lowStockThreshold"], 0);
    assert_eq!(product["stockStatus"], "IN_STOCK", "one unit is above a threshold of zero");
}

#[tokio::test]
async fn the_longest_id_and_name_accepted_round_trip_unchanged() {
    let app = spawn_app().await;
    let id = "x".repeat(64);
    let name = "é".repeat(199) + "☕";

    let added = app.add_product(&json!({"productId": id, "name": name, "quantity": 4_294_967_295_u32})).await;

    let added = added.data(StatusCode::CREATED).clone();
    assert_eq!((added["productId"].as_str(), added["name"].as_str()), (Some(id.as_str()), Some(name.as_str())));
    assert_eq!(added["available"], 4_294_967_295_u64, "the largest initial stock is kept exactly");
    assert_eq!(*app.get_product(&id).await.data(StatusCode::OK), added);
}

#[tokio::test]
async fn liveness_is_200_and_readiness_names_the_broker_when_it_is_down() {
    let app = spawn_app().await;

    let live = app.send(Method::GET, "/health/live", &[], Body::None).await;
    let ready = app.send(Method::GET, "/health/ready", &[], Body::None).await;

    assert_eq!(live.data(StatusCode::OK)["status"], "live");
    // Test apps point at a port where no broker listens; the database is theirs.
    assert_eq!(
        ready.error(StatusCode::SERVICE_UNAVAILABLE, "broker down"),
        "not ready: broker is down (database and pipeline are up)"
    );
}
