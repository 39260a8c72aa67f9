//! A running inventory service on its own database, and what tests need to talk to
//! it: requests, envelope checks, and a fold of a product's history to compare with
//! its `GET`.

use std::sync::Once;

use clap::Parser;
use http_server::{DatabaseSettings, LogFormat, TelemetrySettings};
use inventory_saga::{Application, Cli, Settings};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The body limit the test app runs with.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

static LOGGING: Once = Once::new();

/// An inventory service listening on a free port, with a database of its own.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The client every request goes through.
    pub client: reqwest::Client,
    /// The app's database, search path `inventory`, to look behind the API.
    pub pool: PgPool,
    /// The app's database URL, for the operator commands.
    pub database_url: String,
    /// The app, asked to stop when the test drops this.
    _service: http_server::detached::DetachedService,
}

/// Starts an inventory service on a fresh database. Logs only with `TEST_LOG=1`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an inventory service on a fresh database, with `configure` applied to the
/// test settings first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    LOGGING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
            http_server::init_logging("debug", LogFormat::Text);
        }
    });
    let database_url = migrations::testing::create_database().await.expect("creating a test database");
    // Start from the command line's defaults, so settings added later need no change
    // here, then pin every setting these tests depend on (flags and environment aside).
    let mut settings: Settings = Cli::try_parse_from(["inventory"]).expect("the default settings parse").serve;
    settings.host = "127.0.0.1".to_owned();
    settings.port = 0;
    settings.database_schema = "inventory".to_owned();
    settings.database = DatabaseSettings {
        url: database_url.parse().expect("the test database URL is a postgres:// URL"),
        max_connections: 10,
    };
    settings.http.body_limit_bytes = BODY_LIMIT_BYTES;
    settings.telemetry = TelemetrySettings::logs_only("debug", LogFormat::Text);
    // These tests check the HTTP contract, which must hold without a broker. A port
    // nothing listens on keeps the relay and the saga of every test app away from any
    // broker shared with other tests (a saga there would answer other tests' orders);
    // the end-to-end tests use Kafka.
    settings.kafka.brokers = "127.0.0.1:1".to_owned();
    settings.consumer_group = format!("inventory-api-test-{}", uuid::Uuid::new_v4().simple());
    configure(&mut settings);
    let schema = settings.database_schema.clone();
    let (started, port) = tokio::sync::oneshot::channel();
    let service = http_server::detached::run_detached(move |shutdown| async move {
        let app = Application::build(&settings).await.expect("building the application");
        let _ = started.send(app.port());
        let _ = app.run_until(shutdown).await;
    });
    let address = format!("http://127.0.0.1:{}", port.await.expect("the application started"));
    let pool = migrations::connect_and_migrate(&database_url, &schema, 2, &migrations::INVENTORY)
        .await
        .expect("connecting the test pool");
    TestApp { address, client: reqwest::Client::new(), pool, database_url, _service: service }
}

/// A request body as a test sends it.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body and no `Content-Type`.
    None,
    /// A JSON document, sent as `application/json`.
    Json(Value),
    /// Raw text with the given `Content-Type`.
    Raw(&'static str, String),
    /// Raw text without a `Content-Type` (pass one in the headers, or none).
    Text(String),
}

/// An answer: status, headers and the JSON body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, parsed as JSON (every answer of ours is JSON).
    pub body: Value,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("reading the response body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: the body is not JSON ({e}): {text:?}"));
        Self { status, headers, body }
    }

    /// Asserts a success envelope with `status`, `data` set and `error` null; returns `data`.
    #[track_caller]
    pub fn data(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["success"], json!(true), "success flag; body: {}", self.body);
        assert_eq!(self.body["error"], Value::Null, "error must be null on success; body: {}", self.body);
        assert_eq!(object_keys(&self.body), ["data", "error", "success"], "envelope keys; body: {}", self.body);
        &self.body["data"]
    }

    /// Asserts a failure envelope with `status`, `data` null and a non-empty `error`
    /// message; returns the message. `label` names the case in every assertion.
    #[track_caller]
    pub fn error(&self, status: StatusCode, label: &str) -> &str {
        assert_eq!(self.status, status, "[{label}] unexpected status; body: {}", self.body);
        assert_eq!(self.body["success"], json!(false), "[{label}] success flag; body: {}", self.body);
        assert_eq!(self.body["data"], Value::Null, "[{label}] data must be null on failure; body: {}", self.body);
        assert_eq!(
            object_keys(&self.body),
            ["data", "error", "success"],
            "[{label}] envelope keys; body: {}",
            self.body
        );
        let message =
            self.body["error"].as_str().unwrap_or_else(|| panic!("[{label}] error is not a string: {}", self.body));
        assert!(!message.trim().is_empty(), "[{label}] the error message is empty");
        message
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The sorted keys of a JSON object (empty for anything else).
pub fn object_keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    keys
}

impl TestApp {
    /// Sends any request; `path` starts with `/`.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Body) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(content_type, text) => request.header("content-type", content_type).body(text),
            Body::Text(text) => request.body(text),
        };
        Answer::read(request.send().await.expect("sending the request")).await
    }

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

    /// Rows in the event store, all aggregates.
    pub async fn count_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&self.pool).await.expect("counting events")
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

/// The event types of a history, in order.
pub fn event_types(history: &[Value]) -> Vec<&str> {
    history.iter().map(|e| e["eventType"].as_str().expect("eventType is a string")).collect()
}

/// What a product is after its events, computed here from the `/events` payloads
/// alone (not with the service's code), following DESIGN.md. Alerts change nothing.
pub fn fold_history(product_id: &str, history: &[Value]) -> Value {
    let mut product = Value::Null;
    let (mut available, mut reserved) = (0_u64, 0_u64);
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
            "StockReserved" => {
                available -= units(payload, "quantity");
                reserved += units(payload, "quantity");
            }
            "ReservationReduced" | "StockReleased" => {
                available += units(payload, "quantity");
                reserved -= units(payload, "quantity");
            }
            "ReservationRejected" | "LowStockReached" | "OutOfStock" | "BackInStock" => {}
            other => panic!("unknown product event {other}: {event}"),
        }
        let threshold = product["lowStockThreshold"].as_u64().expect("lowStockThreshold is a count");
        product["available"] = json!(available);
        product["reserved"] = json!(reserved);
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
