//! What the API document says about the inventory service beyond its routes: its
//! title and tags, and the examples of its answers. The schemas of the answers are
//! derived from the types served (`projections::ProductView` and the domain's
//! `StockStatus`, feature `openapi`), so they cannot drift from the code.

use http_server::openapi::Resource;
use serde_json::json;

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

/// Products, as the answers the routes share name them (`NotFound::<ProductResource>`…).
pub struct ProductResource;

impl Resource for ProductResource {
    const NAME: &'static str = "product";
    const EXAMPLE_ID: &'static str = "mug";
}

/// States the rules of the request bodies that their derived schemas cannot: a `PUT`
/// gives a name or a threshold (`UpdateProductRequest::into_command` enforces it), and
/// an adjustment's quantity is not 0 (`UnitChange`).
pub fn add_request_rules(api: &mut utoipa::openapi::OpenApi) {
    http_server::openapi::add_schema_keyword(
        api,
        "UpdateProduct",
        "anyOf",
        json!([
            {"title": "a new name", "required": ["name"], "properties": {"name": {"type": "string"}}},
            {"title": "a new threshold", "required": ["lowStockThreshold"],
             "properties": {"lowStockThreshold": {"type": "integer"}}},
        ]),
    );
    http_server::openapi::add_property_keyword(api, "Adjustment", "quantity", "not", json!({"const": 0}));
}

/// A product, as the examples show it.
pub fn product_example(available: u64, reserved: u64) -> serde_json::Value {
    let status = match available {
        0 => "OUT_OF_STOCK",
        1..=10 => "LOW_STOCK",
        _ => "IN_STOCK",
    };
    json!({"productId": "mug", "name": "Mug", "available": available, "reserved": reserved,
           "onHand": available + reserved, "shipped": 0, "lowStockThreshold": 10, "stockStatus": status,
           "version": 1})
}

/// `data` in a success envelope.
pub fn success(data: serde_json::Value) -> serde_json::Value {
    json!({"success": true, "data": data, "error": null})
}

/// A failure envelope with `message`.
pub fn failure(message: &str) -> serde_json::Value {
    json!({"success": false, "data": null, "error": message})
}
