//! What the API document says about the OMS: its title and tags, and the shapes of
//! what it answers. The answers themselves are built by the read model (`projections`);
//! the shapes here describe their JSON, and the API tests hold every real answer to
//! them, so the two cannot drift apart unnoticed.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// The document's title, description and tags; the routes add themselves.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Order Management Service",
        description = "REST commands and queries on orders, event-sourced in PostgreSQL. Every JSON body is the envelope \
            `{\"success\": bool, \"data\": …|null, \"error\": string|null}`; a client's mistake is a 4xx naming the field or state, never a 5xx. \
            Every response carries `x-request-id` (the client's, or a generated one); send `x-correlation-id` to tie requests together."
    ),
    tags(
        (name = "orders", description = "Placing, changing and reading orders, and their history."),
        (name = "operations", description = "Probes and metrics for operators."),
    )
)]
pub struct ApiDoc;

/// Where an order stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = OrderStatus)]
pub enum OrderStatusSchema {
    /// Some item awaits its reservation.
    Pending,
    /// Every item is reserved.
    Executed,
    /// Some items are reserved, others canceled.
    PartiallyExecuted,
    /// No item is reserved (out of stock, unknown products, or canceled by the customer).
    Canceled,
    /// Payment processed.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Received by the customer.
    Delivered,
}

/// Where an item's reservation stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = ItemStatus)]
pub enum ItemStatusSchema {
    /// The inventory service has not answered yet.
    Pending,
    /// The units are reserved.
    Executed,
    /// Not served; `reason` says why.
    Canceled,
}

/// Why an item is canceled.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = CancelReason)]
pub enum CancelReasonSchema {
    /// Not enough units were available.
    InsufficientStock,
    /// The inventory has no such product.
    UnknownProduct,
    /// The customer canceled the item or the order.
    CanceledByCustomer,
}

/// One item of an order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = OrderItem)]
pub struct OrderItemSchema {
    /// The product.
    #[schema(example = "mug")]
    pub product_id: String,
    /// Units ordered.
    #[schema(minimum = 1, maximum = 1_000_000, example = 2)]
    pub quantity: u32,
    /// Where its reservation stands.
    pub status: ItemStatusSchema,
    /// Why it is canceled; `null` unless it is.
    pub reason: Option<CancelReasonSchema>,
}

/// An order as clients read it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Order, example = json!(order_example("PENDING", "PENDING")))]
pub struct OrderSchema {
    /// The order's id (a UUID).
    #[schema(format = "uuid")]
    pub order_id: String,
    /// Who placed it.
    pub user_id: String,
    /// Where it stands.
    pub status: OrderStatusSchema,
    /// Its items, in the order first requested.
    pub order_items: Vec<OrderItemSchema>,
    /// When it was placed.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// How many events it has.
    #[schema(minimum = 1)]
    pub version: u64,
}

/// An order in the envelope, as the examples show it.
pub fn order_example(status: &str, item_status: &str) -> serde_json::Value {
    json!({
        "orderId": "6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b",
        "userId": "u-1",
        "status": status,
        "orderItems": [{"productId": "mug", "quantity": 2, "status": item_status, "reason": null}],
        "createdAt": "2026-12-01T17:00:00Z",
        "updatedAt": "2026-12-01T17:00:00Z",
        "version": 1
    })
}

/// `data` in a success envelope.
pub fn success(data: serde_json::Value) -> serde_json::Value {
    json!({"success": true, "data": data, "error": null})
}

/// A failure envelope with `message`.
pub fn failure(message: &str) -> serde_json::Value {
    json!({"success": false, "data": null, "error": message})
}

/// A status a client may ask an order to move to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = TargetStatus)]
pub enum TargetStatusSchema {
    /// Payment processed (from `EXECUTED` or `PARTIALLY_EXECUTED`).
    Paid,
    /// Handed to the carrier (from `PAID`).
    Shipped,
    /// Received (from `SHIPPED`).
    Delivered,
    /// Cancel the order and every item, releasing their stock (until shipped).
    Canceled,
}

/// A status a client may give an item.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = ItemChangeStatus)]
pub enum ItemChangeStatusSchema {
    /// With a quantity: the same as giving the quantity alone.
    Pending,
    /// Cancel the item (give no quantity).
    Canceled,
}
