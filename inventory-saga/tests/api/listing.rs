//! `GET /inventory/products?limit=&cursor=`: keyset pages by product id.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, object_keys, spawn_app};

/// Follows `nextCursor` from the first page to the last; returns every page.
async fn all_pages(app: &TestApp, limit: u32) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut query = format!("limit={limit}");
    loop {
        let page = app.list(&query).await.data(StatusCode::OK).clone();
        assert_eq!(object_keys(&page), ["items", "nextCursor"], "page keys: {page}");
        let next = page["nextCursor"].clone();
        pages.push(page);
        assert!(pages.len() <= 100, "paging does not end");
        match next {
            Value::Null => return pages,
            Value::String(cursor) => query = format!("limit={limit}&cursor={cursor}"),
            other => panic!("nextCursor is neither null nor a string: {other}"),
        }
    }
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("items is an array")
        .iter()
        .map(|p| p["productId"].as_str().expect("productId").to_owned())
        .collect()
}

#[tokio::test]
async fn listing_pages_through_every_product_in_id_order_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let added = ["m-4", "a-9", "z", "b.1", "c:2", "a-10", "m-3"];
    for (i, id) in added.iter().enumerate() {
        app.given_product(id, i as u32, 1).await;
    }

    let pages = all_pages(&app, 3).await;

    let sizes: Vec<usize> = pages.iter().map(|p| p["items"].as_array().expect("items").len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let listed: Vec<String> = pages.iter().flat_map(|p| ids(&p["items"])).collect();
    let mut expected: Vec<String> = added.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    for page in &pages {
        for item in page["items"].as_array().expect("items") {
            let id = item["productId"].as_str().expect("productId");
            assert_eq!(*item, *app.get_product(id).await.data(StatusCode::OK), "a listed product is its GET");
        }
    }
}

#[tokio::test]
async fn a_page_that_ends_at_the_last_product_has_no_next_cursor() {
    let app = spawn_app().await;
    for id in ["p-1", "p-2", "p-3", "p-4"] {
        app.given_product(id, 1, 0).await;
    }

    let exact = app.list("limit=4").await.data(StatusCode::OK).clone();
    let first = app.list("limit=2").await.data(StatusCode::OK).clone();
    let cursor = first["nextCursor"].as_str().expect("a first page of two of four has a cursor").to_owned();
    let last = app.list(&format!("limit=2&cursor={cursor}")).await.data(StatusCode::OK).clone();

    assert_eq!(
        (ids(&exact["items"]), exact["nextCursor"].clone()),
        (vec!["p-1".into(), "p-2".into(), "p-3".into(), "p-4".into()], Value::Null)
    );
    assert_eq!(ids(&first["items"]), ["p-1", "p-2"]);
    assert_eq!((ids(&last["items"]), last["nextCursor"].clone()), (vec!["p-3".into(), "p-4".into()], Value::Null));
}

#[tokio::test]
async fn listing_without_a_limit_gives_pages_of_twenty() {
    let app = spawn_app().await;
    for i in 0..25 {
        app.given_product(&format!("p-{i:02}"), 1, 0).await;
    }

    let first = app.list("").await.data(StatusCode::OK).clone();
    let cursor = first["nextCursor"].as_str().expect("more than twenty products: a cursor").to_owned();
    let second = app.list(&format!("cursor={cursor}")).await.data(StatusCode::OK).clone();

    assert_eq!(ids(&first["items"]).len(), 20);
    assert_eq!(ids(&first["items"])[19], "p-19");
    assert_eq!(ids(&second["items"]), ["p-20", "p-21", "p-22", "p-23", "p-24"]);
    assert_eq!(second["nextCursor"], Value::Null);
}

#[tokio::test]
async fn listing_no_products_is_an_empty_last_page() {
    let app = spawn_app().await;

    let page = app.list("limit=5").await;

    assert_eq!(*page.data(StatusCode::OK), json!({"items": [], "nextCursor": null}));
}

#[tokio::test]
async fn a_page_shows_products_as_they_are_after_restocks() {
    let app = spawn_app().await;
    app.given_product("p-1", 0, 5).await;
    app.given_product("p-2", 3, 5).await;
    app.restock("p-1", 20).await.data(StatusCode::OK);

    let page = app.list("limit=10").await.data(StatusCode::OK).clone();

    let summary: Vec<(Value, Value, Value)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| (p["productId"].clone(), p["available"].clone(), p["stockStatus"].clone()))
        .collect();
    assert_eq!(summary, [(json!("p-1"), json!(20), json!("IN_STOCK")), (json!("p-2"), json!(3), json!("LOW_STOCK"))]);
}
