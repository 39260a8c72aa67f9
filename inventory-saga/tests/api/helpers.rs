//! A running inventory service on its own database (the service kit's `testing`),
//! and what tests need to talk to it: the product requests, the saga's requests
//! decided through the store, and a fold of a product's history to compare with its
//! `GET`.

use domain::OrderId;
use domain::inventory::{Product, ProductCommand};
use eventstore::{Command, EventMetadata};
use inventory_saga::{Application, Inventory};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
pub use service_kit::testing::{Answer, BODY_LIMIT_BYTES, Body, assert_audit_fields, object_keys};

service_kit::test_app! {
    /// An inventory service listening on a free port, with a database of its own
    /// (search path `inventory`).
    pub struct TestApp;
}

/// Starts an inventory service on a fresh database. Logs only with `TEST_LOG=1`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with `configure` applied to the test settings (e.g. a real broker).
pub async fn spawn_app_with(configure: impl FnOnce(&mut inventory_saga::Settings)) -> TestApp {
    TestApp(service_kit::testing::spawn::<Application, Inventory>(configure).await)
}

impl TestApp {
    /// `POST /inventory/products`.
    pub async fn add_product(&self, body: &Value) -> Answer {
        self.add_product_with(body, &[]).await
    }

    /// `POST /inventory/products` with extra headers.
    pub async fn add_product_with(&self, body: &Value, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, "/inventory/products", headers, Body::Json(body.clone())).await
    }

    /// Adds product `product_id` with `quantity` units and a low-stock threshold;
    /// asserts 201 and returns the product.
    pub async fn given_product(&self, product_id: &str, quantity: u32, low_stock_threshold: u32) -> Value {
        let body = json!({"productId": product_id, "name": format!("Product {product_id}"), "quantity": quantity, "lowStockThreshold": low_stock_threshold});
        self.add_product(&body).await.data(StatusCode::CREATED).clone()
    }

    /// `PUT /inventory/products/{id}` with `body` and extra headers.
    pub async fn put_product(&self, product_id: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let path = format!("/inventory/products/{product_id}");
        self.send(Method::PUT, &path, headers, Body::Json(body.clone())).await
    }

    /// `GET /inventory/products/{id}`.
    pub async fn get_product(&self, product_id: &str) -> Answer {
        self.send(Method::GET, &format!("/inventory/products/{product_id}"), &[], Body::None).await
    }

    /// `POST /inventory/products/{id}/restock` with `{"quantity": quantity}`.
    pub async fn restock(&self, product_id: &str, quantity: i64) -> Answer {
        self.restock_with(product_id, quantity, &[]).await
    }

    /// `POST /inventory/products/{id}/restock` with extra headers.
    pub async fn restock_with(&self, product_id: &str, quantity: i64, headers: &[(&str, &str)]) -> Answer {
        let path = format!("/inventory/products/{product_id}/restock");
        self.send(Method::POST, &path, headers, Body::Json(json!({"quantity": quantity}))).await
    }

    /// `GET /inventory/products?{query}`; `query` is sent as written.
    pub async fn list(&self, query: &str) -> Answer {
        self.send(Method::GET, &format!("/inventory/products?{query}"), &[], Body::None).await
    }

    /// `GET /inventory/products/{id}/events`.
    pub async fn events(&self, product_id: &str) -> Answer {
        self.send(Method::GET, &format!("/inventory/products/{product_id}/events"), &[], Body::None).await
    }

    /// The product's history; asserts 200 and an array.
    pub async fn history(&self, product_id: &str) -> Vec<Value> {
        self.events(product_id).await.data(StatusCode::OK).as_array().expect("the history is an array").clone()
    }

    /// Decides `commands` (product, command) on the products in one transaction, as the
    /// saga does, through a store of the service's kind; asserts no rule refuses one.
    pub async fn decide(&self, commands: &[(&str, ProductCommand)]) {
        let commands: Vec<Command<Product>> = commands
            .iter()
            .map(|(product_id, command)| Command {
                aggregate_id: (*product_id).to_owned(),
                command: command.clone(),
                metadata: EventMetadata::new("api-test", "api-test", "test"),
            })
            .collect();
        let store = inventory_saga::products::Products::store(self.pool.clone());
        for result in store.execute_all(&commands).await.expect("decided") {
            result.expect("no rule refuses the saga's requests");
        }
    }

    /// Reserves `quantity` units of `product_id` for `order_id` under `revision`, as
    /// the saga does for an order event.
    pub async fn reserve(&self, product_id: &str, order_id: OrderId, quantity: i64, revision: u64) {
        let quantity = domain::Quantity::new(quantity).expect("a quantity");
        self.decide(&[(product_id, ProductCommand::ReserveStock { order_id, quantity, revision })]).await;
    }

    /// The product's stock as `GET` shows it: (onHand, available, reserved, shipped).
    pub async fn stock(&self, product_id: &str) -> (u64, u64, u64, u64) {
        stock_of(self.get_product(product_id).await.data(StatusCode::OK))
    }

    /// Asserts that folding the product's `/events` gives exactly its `GET`, and
    /// returns the history.
    pub async fn assert_history_explains_product(&self, product_id: &str) -> Vec<Value> {
        let product = self.get_product(product_id).await.data(StatusCode::OK).clone();
        let history = self.history(product_id).await;
        assert_eq!(fold_history(product_id, &history), product, "folding /events must give GET; history: {history:#?}");
        history
    }
}

/// A product's stock: (onHand, available, reserved, shipped).
pub fn stock_of(product: &Value) -> (u64, u64, u64, u64) {
    let count = |field: &str| product[field].as_u64().unwrap_or_else(|| panic!("{field} is a count in {product}"));
    (count("onHand"), count("available"), count("reserved"), count("shipped"))
}

/// The event types of a history, in order.
pub fn event_types(history: &[Value]) -> Vec<&str> {
    history.iter().map(|e| e["eventType"].as_str().expect("eventType is a string")).collect()
}

/// What a product is after its events, computed here from the `/events` payloads
/// alone (not with the service's code), following DESIGN.md. Alerts change nothing.
pub fn fold_history(product_id: &str, history: &[Value]) -> Value {
    let mut product = Value::Null;
    let (mut available, mut reserved, mut shipped) = (0_u64, 0_u64, 0_u64);
    let units = |payload: &Value, key: &str| {
        payload[key].as_u64().unwrap_or_else(|| panic!("{key} is not a count in {payload}"))
    };
    for event in history {
        let payload = &event["payload"];
        match event["eventType"].as_str().expect("eventType is a string") {
            "ProductAdded" => {
                available = units(payload, "initialStock");
                product = json!({"productId": product_id, "name": payload["name"], "reserved": 0, "lowStockThreshold": payload["lowStockThreshold"]});
            }
            "StockRestocked" => available += units(payload, "quantity"),
            "StockAdjusted" => {
                let change = payload["quantity"].as_i64().unwrap_or_else(|| panic!("a signed quantity in {payload}"));
                available = available.checked_add_signed(change).expect("an adjustment never takes reserved units");
            }
            "ProductRenamed" => product["name"] = payload["name"].clone(),
            "LowStockThresholdChanged" => product["lowStockThreshold"] = payload["lowStockThreshold"].clone(),
            "StockReserved" => {
                available -= units(payload, "quantity");
                reserved += units(payload, "quantity");
            }
            "ReservationReduced" | "StockReleased" => {
                available += units(payload, "quantity");
                reserved -= units(payload, "quantity");
            }
            "StockShipped" => {
                reserved -= units(payload, "quantity");
                shipped += units(payload, "quantity");
            }
            "ReservationRejected" | "LowStockReached" | "OutOfStock" | "BackInStock" => {}
            other => panic!("unknown product event {other}: {event}"),
        }
        let threshold = product["lowStockThreshold"].as_u64().expect("lowStockThreshold is a count");
        product["available"] = json!(available);
        product["reserved"] = json!(reserved);
        product["onHand"] = json!(available + reserved);
        product["shipped"] = json!(shipped);
        product["stockStatus"] = json!(stock_status(available, threshold));
        product["version"] = event["sequence"].clone();
    }
    product
}

/// DESIGN.md's stock status: nothing is out, at or below the threshold is low.
pub fn stock_status(available: u64, low_stock_threshold: u64) -> &'static str {
    if available == 0 {
        "OUT_OF_STOCK"
    } else if available <= low_stock_threshold {
        "LOW_STOCK"
    } else {
        "IN_STOCK"
    }
}
