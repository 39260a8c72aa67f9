//! What the API document says about the inventory service: its title and tags, and
//! the shapes of what it answers. The answers are built by the read model
//! (`projections`); the API tests hold every real answer to the shapes here.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// The document's title, description and tags; the routes add themselves.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Inventory service",
        description = "Products and their stock, event-sourced in PostgreSQL; a saga reserves stock for orders from Kafka. \
            Every JSON body is the envelope `{\"success\": bool, \"data\": …|null, \"error\": string|null}`; a client's mistake is a 4xx \
            naming the field or state, never a 5xx. Every response carries `x-request-id`."
    ),
    tags(
        (name = "products", description = "Adding, restocking and reading products, and their history."),
        (name = "operations", description = "Probes and metrics for operators."),
    )
)]
pub struct ApiDoc;

/// How much of a product is left.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = StockStatus)]
pub enum StockStatusSchema {
    /// More than the low-stock threshold available.
    InStock,
    /// At or below the threshold, above zero.
    LowStock,
    /// Nothing available.
    OutOfStock,
}

/// A product as clients read it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Product, example = json!(product_example(100, 0)))]
pub struct ProductSchema {
    /// The product's id.
    #[schema(example = "mug")]
    pub product_id: String,
    /// Display name.
    #[schema(example = "Mug")]
    pub name: String,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held for orders.
    pub reserved: u64,
    /// At or below this many available units, stock is low.
    pub low_stock_threshold: u32,
    /// In stock, low or out.
    pub stock_status: StockStatusSchema,
    /// How many events it has.
    #[schema(minimum = 1)]
    pub version: u64,
}

/// A product, as the examples show it.
pub fn product_example(available: u64, reserved: u64) -> serde_json::Value {
    let status = match available {
        0 => "OUT_OF_STOCK",
        1..=10 => "LOW_STOCK",
        _ => "IN_STOCK",
    };
    json!({"productId": "mug", "name": "Mug", "available": available, "reserved": reserved,
           "lowStockThreshold": 10, "stockStatus": status, "version": 1})
}

/// `data` in a success envelope.
pub fn success(data: serde_json::Value) -> serde_json::Value {
    json!({"success": true, "data": data, "error": null})
}

/// A failure envelope with `message`.
pub fn failure(message: &str) -> serde_json::Value {
    json!({"success": false, "data": null, "error": message})
}
