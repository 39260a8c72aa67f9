//! `/events` in pages: `from` and `limit`, and `Link: <…>; rel="next"` while more
//! events follow; the pages together are the whole history.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Body, order_id, spawn_app};

#[tokio::test]
async fn following_the_next_links_reads_the_whole_history_a_page_at_a_time() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("u-1", &[("mug", 1)]).await);
    for quantity in 2..=5 {
        app.put_order(&id, &json!({"orderItems": [{"productId": "mug", "quantity": quantity}]}))
            .await
            .data(StatusCode::OK);
    }
    let whole = app.events(&id).await;
    assert_eq!(whole.header("link"), None, "one page holds 5 events: no next");
    let whole = whole.data(StatusCode::OK).as_array().expect("an array").clone();
    assert_eq!(whole.len(), 5);

    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut next = Some(format!("/oms/orders/{id}/events?limit=2"));
    while let Some(path) = next.take() {
        let page = app.send(Method::GET, &path, &[], Body::None).await;
        next = page.header("link").map(|link| {
            let target = link.strip_prefix('<').and_then(|l| l.split_once(">; rel=\"next\"")).map(|(t, _)| t);
            target.unwrap_or_else(|| panic!("a next link: {link}")).to_owned()
        });
        pages.push(page.data(StatusCode::OK).as_array().expect("an array").clone());
        assert!(pages.len() <= 3, "5 events in pages of 2: 3 pages");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), whole, "the pages are the history, in order, once");

    let from = app.send(Method::GET, &format!("/oms/orders/{id}/events?from=4"), &[], Body::None).await;
    let sequences: Vec<&Value> =
        from.data(StatusCode::OK).as_array().expect("an array").iter().map(|e| &e["sequence"]).collect();
    assert_eq!(sequences, [4, 5]);
    let past = app.send(Method::GET, &format!("/oms/orders/{id}/events?from=9"), &[], Body::None).await;
    assert_eq!(past.data(StatusCode::OK), &json!([]), "past the end of an order's history: an empty page");
}

#[tokio::test]
async fn out_of_range_pages_are_422_and_an_unknown_order_404() {
    let app = spawn_app().await;
    let id = order_id(&app.place_order("u-1", &[("mug", 1)]).await);
    for query in ["limit=0", "limit=1001", "from=0", "from=-1"] {
        let answer = app.send(Method::GET, &format!("/oms/orders/{id}/events?{query}"), &[], Body::None).await;
        answer.error(StatusCode::UNPROCESSABLE_ENTITY, query);
    }
    let most = app.send(Method::GET, &format!("/oms/orders/{id}/events?limit=1000"), &[], Body::None).await;
    most.data(StatusCode::OK);
    let unknown = "00000000-0000-4000-8000-000000000000";
    for query in ["", "?from=3"] {
        let answer = app.send(Method::GET, &format!("/oms/orders/{unknown}/events{query}"), &[], Body::None).await;
        answer.error(StatusCode::NOT_FOUND, query);
    }
}
