//! A running OMS on its own database, and what tests need to talk to it: requests,
//! envelope checks, and a fold of an order's history to compare with its `GET`.

use std::sync::Once;

use clap::Parser;
use command_api::{Application, Cli, Settings};
use http_server::{DatabaseSettings, LogFormat, TelemetrySettings};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::PgPool;

/// The body limit the test app runs with.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

static LOGGING: Once = Once::new();

/// An OMS listening on a free port, with a database of its own.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The client every request goes through.
    pub client: reqwest::Client,
    /// The app's database, search path `oms`, to look behind the API.
    pub pool: PgPool,
    /// The app's database URL, for the operator commands.
    pub database_url: String,
    /// The app, asked to stop when the test drops this.
    _service: http_server::detached::DetachedService,
}

/// Starts an OMS on a fresh database. Logs only with `TEST_LOG=1`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an OMS on a fresh database, with `configure` applied to the test settings
/// first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    LOGGING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
            http_server::init_logging("debug", LogFormat::Text);
        }
    });
    let database_url = migrations::testing::create_database().await.expect("creating a test database");
    // Start from the command line's defaults, so settings added later need no change
    // here, then pin every setting these tests depend on (flags and environment aside).
    let mut settings: Settings = Cli::try_parse_from(["oms"]).expect("the default settings parse").serve;
    settings.host = "127.0.0.1".to_owned();
    settings.port = 0;
    settings.database_schema = "oms".to_owned();
    settings.database = DatabaseSettings {
        url: database_url.parse().expect("the test database URL is a postgres:// URL"),
        max_connections: 10,
    };
    settings.http.body_limit_bytes = BODY_LIMIT_BYTES;
    settings.telemetry = TelemetrySettings::logs_only("debug", LogFormat::Text);
    // These tests check the HTTP contract, which must hold without a broker. A port
    // nothing listens on keeps the relay and the outcome consumer of every test app
    // away from any broker shared with other tests; the end-to-end tests use Kafka.
    settings.kafka.brokers = "127.0.0.1:1".to_owned();
    settings.consumer_group = format!("oms-api-test-{}", uuid::Uuid::new_v4().simple());
    configure(&mut settings);
    let (started, port) = tokio::sync::oneshot::channel();
    let service = http_server::detached::run_detached(move |shutdown| async move {
        let app = Application::build(&settings).await.expect("building the application");
        let _ = started.send(app.port());
        let _ = app.run_until(shutdown).await;
    });
    let address = format!("http://127.0.0.1:{}", port.await.expect("the application started"));
    let pool = migrations::connect_and_migrate(&database_url, "oms", 2, &migrations::OMS)
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
    pub async fn send(&self, method: reqwest::Method, path: &str, headers: &[(&str, &str)], body: Body) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(content_type, text) => request.header("content-type", content_type).body(text),
        };
        Answer::read(request.send().await.expect("sending the request")).await
    }

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

    /// Rows in the event store, all aggregates.
    pub async fn count_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&self.pool).await.expect("counting events")
    }

    /// Asserts that folding the order's `/events` gives exactly its `GET`, and returns
    /// the history.
    pub async fn assert_history_explains_order(&self, order_id: &str) -> Vec<Value> {
        let order = self.get_order(order_id).await.data(StatusCode::OK).clone();
        let history =
            self.events(order_id).await.data(StatusCode::OK).as_array().expect("the history is an array").clone();
        let folded = fold_history(order_id, &history);
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

/// What an order is after its events, computed here from the `/events` payloads alone
/// (not with the service's code), following DESIGN.md.
pub fn fold_history(order_id: &str, history: &[Value]) -> Value {
    let mut order = Value::Null;
    for event in history {
        let payload = &event["payload"];
        let occurred_at = event["occurredAt"].as_str().expect("occurredAt is a string");
        match event["eventType"].as_str().expect("eventType is a string") {
            "OrderPlaced" => {
                let items: Vec<Value> = payload["items"]
                    .as_array()
                    .expect("OrderPlaced has items")
                    .iter()
                    .map(|line| json!({"productId": line["productId"], "quantity": line["quantity"], "status": "PENDING", "reason": null}))
                    .collect();
                order = json!({"orderId": order_id, "userId": payload["userId"], "status": "PENDING", "orderItems": items, "createdAt": occurred_at});
            }
            "OrderItemsChanged" => {
                for change in payload["items"].as_array().expect("OrderItemsChanged has items") {
                    let reason =
                        if change["status"] == "CANCELED" { json!("CANCELED_BY_CUSTOMER") } else { Value::Null };
                    let item = json!({"productId": change["productId"], "quantity": change["quantity"], "status": change["status"], "reason": reason});
                    let items = order["orderItems"].as_array_mut().expect("items");
                    match items.iter_mut().find(|i| i["productId"] == change["productId"]) {
                        Some(existing) => *existing = item,
                        None => items.push(item),
                    }
                }
                order["status"] = json!(status_of_open_order(&order["orderItems"]));
            }
            "OrderCanceled" => {
                order["status"] = json!("CANCELED");
                for item in order["orderItems"].as_array_mut().expect("items") {
                    if item["status"] != "CANCELED" {
                        item["status"] = json!("CANCELED");
                        item["reason"] = json!("CANCELED_BY_CUSTOMER");
                    }
                }
            }
            "OrderStatusChanged" => order["status"] = payload["status"].clone(),
            other => panic!("event {other} cannot happen without the inventory saga: {event}"),
        }
        order["updatedAt"] = json!(occurred_at);
        order["version"] = event["sequence"].clone();
    }
    order
}

/// PENDING while any item is; then EXECUTED, PARTIALLY_EXECUTED or CANCELED.
fn status_of_open_order(items: &Value) -> &'static str {
    let statuses: Vec<&str> =
        items.as_array().expect("items").iter().map(|i| i["status"].as_str().expect("item status")).collect();
    let executed = statuses.iter().filter(|s| **s == "EXECUTED").count();
    if statuses.contains(&"PENDING") {
        "PENDING"
    } else if executed == 0 {
        "CANCELED"
    } else if executed == statuses.len() {
        "EXECUTED"
    } else {
        "PARTIALLY_EXECUTED"
    }
}
