//! A running OMS on its own database (the service kit's `testing`), and what tests
//! need to talk to it: the order requests, and the check that the fold of an order's
//! history (`command_api::testing`) gives its `GET`.

pub use command_api::testing::fold_order;
use command_api::{Application, Oms, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};
pub use service_kit::testing::{Answer, BODY_LIMIT_BYTES, Body, assert_audit_fields, object_keys};

service_kit::test_app! {
    /// An OMS listening on a free port, with a database of its own (search path `oms`).
    pub struct TestApp;
}

/// Starts an OMS on a fresh database. Logs only with `TEST_LOG=1`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an OMS on a fresh database, with `configure` applied to the test settings
/// first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp(service_kit::testing::spawn::<Application, Oms>(configure).await)
}

impl TestApp {
    /// `POST /oms/orders`.
    pub async fn post_order(&self, body: &Value) -> Answer {
        self.post_order_with(body, &[]).await
    }

    /// `POST /oms/orders` with extra headers.
    pub async fn post_order_with(&self, body: &Value, headers: &[(&str, &str)]) -> Answer {
        self.send(reqwest::Method::POST, "/oms/orders", headers, Body::Json(body.clone())).await
    }

    /// Places an order of `items` (product, quantity) for `user`; asserts 201 and
    /// returns the order.
    pub async fn place_order(&self, user: &str, items: &[(&str, u32)]) -> Value {
        let lines: Vec<Value> =
            items.iter().map(|(product, quantity)| json!({"productId": product, "quantity": quantity})).collect();
        self.post_order(&json!({"userId": user, "orderItems": lines})).await.data(StatusCode::CREATED).clone()
    }

    /// `GET /oms/orders/{id}`.
    pub async fn get_order(&self, order_id: &str) -> Answer {
        self.send(reqwest::Method::GET, &format!("/oms/orders/{order_id}"), &[], Body::None).await
    }

    /// `PUT /oms/orders/{id}`.
    pub async fn put_order(&self, order_id: &str, body: &Value) -> Answer {
        self.put_order_with(order_id, body, &[]).await
    }

    /// `PUT /oms/orders/{id}` with extra headers.
    pub async fn put_order_with(&self, order_id: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        self.send(reqwest::Method::PUT, &format!("/oms/orders/{order_id}"), headers, Body::Json(body.clone())).await
    }

    /// `GET /oms/orders?{query}`; `query` is sent as written.
    pub async fn list(&self, query: &str) -> Answer {
        self.send(reqwest::Method::GET, &format!("/oms/orders?{query}"), &[], Body::None).await
    }

    /// `GET /oms/orders/{id}/events`.
    pub async fn events(&self, order_id: &str) -> Answer {
        self.send(reqwest::Method::GET, &format!("/oms/orders/{order_id}/events"), &[], Body::None).await
    }

    /// Asserts that folding the order's `/events` gives exactly its `GET`, and returns
    /// the history.
    pub async fn assert_history_explains_order(&self, order_id: &str) -> Vec<Value> {
        let order = self.get_order(order_id).await.data(StatusCode::OK).clone();
        let history =
            self.events(order_id).await.data(StatusCode::OK).as_array().expect("the history is an array").clone();
        let folded = fold_order(order_id, &history);
        assert_eq!(comparable(&folded), comparable(&order), "folding /events must give GET; history: {history:#?}");
        history
    }
}

/// The id of an order as the API answered it.
pub fn order_id(order: &Value) -> String {
    order["orderId"].as_str().unwrap_or_else(|| panic!("no orderId in {order}")).to_owned()
}

/// An item as the API shows it while it waits for the inventory service.
pub fn pending(product: &str, quantity: u32) -> Value {
    json!({"productId": product, "quantity": quantity, "status": "PENDING", "reason": null})
}

/// An item the customer canceled.
pub fn canceled_by_customer(product: &str, quantity: u32) -> Value {
    json!({"productId": product, "quantity": quantity, "status": "CANCELED", "reason": "CANCELED_BY_CUSTOMER"})
}

/// The same instant written the same way: RFC 3339 in UTC with trailing zeros of the
/// fraction removed (events store microseconds, the view prints as few digits as needed).
pub fn instant(text: &str) -> String {
    let Some(body) = text.strip_suffix('Z') else { panic!("{text} is not a UTC RFC 3339 time") };
    match body.split_once('.') {
        Some((seconds, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() { format!("{seconds}Z") } else { format!("{seconds}.{fraction}Z") }
        }
        None => text.to_owned(),
    }
}

/// An order with its times normalized, for equality.
fn comparable(order: &Value) -> Value {
    let mut order = order.clone();
    for key in ["createdAt", "updatedAt"] {
        let text = order[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {order}")).to_owned();
        order[key] = json!(instant(&text));
    }
    order
}
