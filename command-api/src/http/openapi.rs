//! What the API document says about the OMS beyond its routes: its title and tags,
//! the examples of its answers, and the one request rule with no type of its own (the
//! statuses a client may give an item). The schemas of the answers and of the
//! statuses are derived from the types served (`projections::OrderView` and the
//! domain's enums, feature `openapi`), so they cannot drift from the code.

use http_server::openapi::Resource;
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
        (name = "orders", description = "Placing, changing and reading orders, and their history. \
            A resolved order (`EXECUTED` or `PARTIALLY_EXECUTED`) not `PAID` within the payment deadline after its resolution \
            (`ORDER_PAYMENT_TIMEOUT_MS`, 30 minutes unless configured; 0 turns it off) is canceled by the OMS: its items \
            `CANCELED` with reason `PAYMENT_TIMEOUT`, their stock released; a payment after that is refused with 409."),
        (name = "operations", description = "Probes and metrics for operators."),
    )
)]
pub struct ApiDoc;

/// Orders, as the answers the routes share name them (`NotFound::<OrderResource>`…).
pub struct OrderResource;

impl Resource for OrderResource {
    const NAME: &'static str = "order";
    const EXAMPLE_ID: &'static str = "6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b";
}

/// An order in the envelope, as the examples show it.
pub fn order_example(status: &str, item_status: &str) -> serde_json::Value {
    json!({
        "orderId": OrderResource::EXAMPLE_ID,
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

/// States the rules of the request bodies that span fields, which their derived
/// schemas cannot: a `PUT` asks for a status or at least one item change, and an item
/// change is a quantity (with no status, or `PENDING`) or status `CANCELED` (with no
/// quantity). `UpdateOrderRequest::into_command` enforces them.
pub fn add_request_rules(api: &mut utoipa::openapi::OpenApi) {
    http_server::openapi::add_schema_keyword(
        api,
        "UpdateOrder",
        "anyOf",
        json!([
            {"title": "a status", "required": ["status"],
             "properties": {"status": {"$ref": "#/components/schemas/TargetStatus"}}},
            {"title": "item changes", "required": ["orderItems"],
             "properties": {"orderItems": {"type": "array", "minItems": 1}}},
        ]),
    );
    http_server::openapi::add_schema_keyword(
        api,
        "ItemUpdate",
        "oneOf",
        json!([
            {"title": "set a quantity", "required": ["quantity"],
             "properties": {"quantity": {"type": "integer"}, "status": {"enum": ["PENDING", null]}}},
            {"title": "cancel the item", "required": ["status"],
             "properties": {"status": {"const": "CANCELED"}, "quantity": {"type": "null"}}},
        ]),
    );
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
