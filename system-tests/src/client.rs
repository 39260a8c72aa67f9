//! A thin client for both APIs that unwraps the envelope.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Both services' base URLs and an HTTP client.
#[derive(Debug, Clone)]
pub struct Api {
    /// e.g. `http://127.0.0.1:8080`.
    pub oms: String,
    /// e.g. `http://127.0.0.1:8081`.
    pub inventory: String,
    /// The client.
    pub http: reqwest::Client,
}

impl Api {
    /// A client for the two base URLs.
    pub fn new(oms: impl Into<String>, inventory: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Self { oms: oms.into(), inventory: inventory.into(), http }
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
        let response = request.send().await.context("sending")?;
        let status = response.status();
        let body: Value = response.json().await.context("reading the JSON body")?;
        Ok((status, body))
    }

    async fn expect(&self, request: reqwest::RequestBuilder, expected: StatusCode) -> anyhow::Result<Value> {
        let (status, body) = self.call(request).await?;
        if status != expected {
            bail!("expected {expected}, got {status}: {body}");
        }
        Ok(body["data"].clone())
    }

    /// Adds a product; returns it.
    pub async fn add_product(
        &self,
        product_id: &str,
        quantity: u32,
        low_stock_threshold: u32,
    ) -> anyhow::Result<Value> {
        let body = json!({"productId": product_id, "name": format!("Product {product_id}"), "quantity": quantity, "lowStockThreshold": low_stock_threshold});
        self.expect(self.http.post(format!("{}/inventory/products", self.inventory)).json(&body), StatusCode::CREATED)
            .await
    }

    /// Restocks a product; returns it.
    pub async fn restock(&self, product_id: &str, quantity: u32) -> anyhow::Result<Value> {
        let url = format!("{}/inventory/products/{product_id}/restock", self.inventory);
        self.expect(self.http.post(url).json(&json!({"quantity": quantity})), StatusCode::OK).await
    }

    /// Adjusts a product's units on hand by `quantity` (signed) for `reason`; returns it.
    pub async fn adjust(&self, product_id: &str, quantity: i64, reason: &str) -> anyhow::Result<Value> {
        let url = format!("{}/inventory/products/{product_id}/adjustments", self.inventory);
        self.expect(self.http.post(url).json(&json!({"quantity": quantity, "reason": reason})), StatusCode::OK).await
    }

    /// A product.
    pub async fn product(&self, product_id: &str) -> anyhow::Result<Value> {
        self.expect(self.http.get(format!("{}/inventory/products/{product_id}", self.inventory)), StatusCode::OK).await
    }

    /// Places an order of `(productId, quantity)` lines; returns it.
    pub async fn place_order(&self, user_id: &str, lines: &[(&str, u32)]) -> anyhow::Result<Value> {
        let items: Vec<Value> = lines.iter().map(|(p, q)| json!({"productId": p, "quantity": q})).collect();
        let body = json!({"userId": user_id, "orderItems": items});
        self.expect(self.http.post(format!("{}/oms/orders", self.oms)).json(&body), StatusCode::CREATED).await
    }

    /// `POST /oms/orders` with an `Idempotency-Key`; returns the status and the envelope
    /// whatever they are (an error only when no answer came).
    pub async fn post_order_with_key(
        &self,
        user_id: &str,
        lines: &[(&str, u32)],
        idempotency_key: &str,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let items: Vec<Value> = lines.iter().map(|(p, q)| json!({"productId": p, "quantity": q})).collect();
        let body = json!({"userId": user_id, "orderItems": items});
        self.call(
            self.http.post(format!("{}/oms/orders", self.oms)).header("Idempotency-Key", idempotency_key).json(&body),
        )
        .await
    }

    /// Every product, following the pages.
    pub async fn all_products(&self) -> anyhow::Result<Vec<Value>> {
        let mut products = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut request =
                self.http.get(format!("{}/inventory/products", self.inventory)).query(&[("limit", "100")]);
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor)]);
            }
            let page = self.expect(request, StatusCode::OK).await?;
            products.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(products),
            }
        }
        bail!("the product pages never ended")
    }

    /// An order.
    pub async fn order(&self, order_id: &str) -> anyhow::Result<Value> {
        self.expect(self.http.get(format!("{}/oms/orders/{order_id}", self.oms)), StatusCode::OK).await
    }

    /// An order as it was at `as_of` (a version or an RFC 3339 time).
    pub async fn order_as_of(&self, order_id: &str, as_of: &str) -> anyhow::Result<Value> {
        let url = format!("{}/oms/orders/{order_id}", self.oms);
        self.expect(self.http.get(url).query(&[("asOf", as_of)]), StatusCode::OK).await
    }

    /// `PUT` on an order; returns the status and the envelope.
    pub async fn update_order(&self, order_id: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.call(self.http.put(format!("{}/oms/orders/{order_id}", self.oms)).json(&body)).await
    }

    /// An order's history.
    pub async fn order_events(&self, order_id: &str) -> anyhow::Result<Vec<Value>> {
        let data =
            self.expect(self.http.get(format!("{}/oms/orders/{order_id}/events", self.oms)), StatusCode::OK).await?;
        Ok(data.as_array().cloned().unwrap_or_default())
    }

    /// A product's history.
    pub async fn product_events(&self, product_id: &str) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/inventory/products/{product_id}/events", self.inventory);
        let data = self.expect(self.http.get(url), StatusCode::OK).await?;
        Ok(data.as_array().cloned().unwrap_or_default())
    }

    /// The metrics (Prometheus text) of the service at `base` (one of [`Api::oms`] and
    /// [`Api::inventory`]).
    pub async fn metrics(&self, base: &str) -> anyhow::Result<String> {
        let response = self.http.get(format!("{base}/metrics")).send().await.context("GET /metrics")?;
        response.error_for_status()?.text().await.context("reading /metrics")
    }

    /// Polls an order until no item is `PENDING`; returns it.
    pub async fn resolved_order(&self, order_id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let order = self.order(order_id).await?;
            if order["status"] != "PENDING" {
                return Ok(order);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("order {order_id} still pending after {timeout:?}: {order}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
