//! Request and query shapes of the inventory API. Fields are domain types, so a value
//! that breaks a rule is refused while parsing, with a message naming its field.

use domain::inventory::{AddProduct, AdjustmentReason, ProductName, UnitChange, UpdateProduct};
use domain::{ProductId, Quantity};
use projections::{AsOf, Cursor, Page, ProductView};
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;

/// `POST /inventory/products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = AddProduct)]
pub struct AddProductRequest {
    /// The product's id: 1 to 64 letters, digits and `. _ : -`.
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._:-]+$", example = "mug")]
    pub product_id: ProductId,
    /// Display name: 1 to 200 characters, not blank, no control characters.
    #[schema(value_type = String, min_length = 1, max_length = 200, example = "Mug",
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]*$")]
    pub name: ProductName,
    /// Units on hand; zero is allowed (announced as out of stock).
    #[serde(deserialize_with = "http_server::extract::whole_number")]
    #[schema(format = Int64, minimum = 0, maximum = 4_294_967_295_u32, example = 100)]
    pub quantity: u32,
    /// At or below this many available units, stock is low; 0 when omitted.
    #[serde(default, deserialize_with = "http_server::extract::whole_number")]
    #[schema(format = Int64, minimum = 0, maximum = 4_294_967_295_u32, example = 10)]
    pub low_stock_threshold: u32,
}

impl AddProductRequest {
    pub fn into_command(self) -> (ProductId, AddProduct) {
        let add =
            AddProduct { name: self.name, initial_stock: self.quantity, low_stock_threshold: self.low_stock_threshold };
        (self.product_id, add)
    }
}

/// `PUT /inventory/products/{productId}`: a new name, a new low-stock threshold, or
/// both.
// The document states that one is needed beside the fields (`openapi::add_request_rules`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = UpdateProduct)]
pub struct UpdateProductRequest {
    /// Display name: 1 to 200 characters, not blank, no control characters.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, example = "Big mug",
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]*$")]
    pub name: Option<ProductName>,
    /// At or below this many available units, stock is low.
    #[serde(default, deserialize_with = "http_server::extract::whole_number")]
    #[schema(format = Int64, minimum = 0, maximum = 4_294_967_295_u32, example = 5)]
    pub low_stock_threshold: Option<u32>,
}

impl UpdateProductRequest {
    pub fn into_command(self) -> Result<UpdateProduct, ApiError> {
        if self.name.is_none() && self.low_stock_threshold.is_none() {
            return Err(ApiError::Invalid("nothing to update: give name and/or lowStockThreshold".to_owned()));
        }
        Ok(UpdateProduct { name: self.name, low_stock_threshold: self.low_stock_threshold })
    }
}

/// `POST /inventory/products/{productId}/adjustments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Adjustment)]
pub struct AdjustmentRequest {
    /// Units added (positive) or removed (negative): a whole number from -1,000,000 to
    /// 1,000,000 other than 0.
    // The document states "not 0" beside the bounds (`openapi::add_request_rules`).
    #[serde(deserialize_with = "http_server::extract::whole_number")]
    #[schema(value_type = i32, minimum = -1_000_000, maximum = 1_000_000, example = -3)]
    pub quantity: UnitChange,
    /// Why.
    pub reason: AdjustmentReason,
}

/// `POST /inventory/products/{productId}/restock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Restock)]
pub struct RestockRequest {
    /// Units received, from 1 to 1,000,000.
    #[serde(deserialize_with = "http_server::extract::whole_number")]
    #[schema(value_type = u32, minimum = 1, maximum = 1_000_000, example = 50)]
    pub quantity: Quantity,
}

/// `GET /inventory/products/{productId}` query parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetProductQuery {
    /// See [`GetProductQuery::into_params`].
    #[serde(default, deserialize_with = "http_server::as_of::deserialize")]
    pub as_of: Option<AsOf>,
}

impl IntoParams for GetProductQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![http_server::as_of::as_of_parameter(
            "The product as it was, folded from its events: right after this version (1, 2, ...), or with every \
             event recorded by this RFC 3339 time.",
        )]
    }
}

/// The `If-Match` parameter of the writes to a product.
fn if_match() -> Parameter {
    http_server::headers::if_match_parameter(
        "Only if the product is still at this version: its `ETag` as read, e.g. `\"3\"` (a list, or `*` for any; \
         a weak tag never matches). Without it the write does not check.",
    )
}

/// The headers of `PUT /inventory/products/{productId}`.
pub struct UpdateProductHeaders;

impl IntoParams for UpdateProductHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![if_match()]
    }
}

/// The headers of a restock or an adjustment.
pub struct StockChangeHeaders;

impl IntoParams for StockChangeHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            if_match(),
            http_server::headers::idempotency_key_parameter(
                "1 to 255 visible ASCII characters. A retry with the same key and body is applied once and \
                 answered with the product as it now is; the same key with another body is 422.",
            ),
        ]
    }
}

/// `GET /inventory/products` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListProductsQuery {
    /// Page size, from 1 to 100; 20 when omitted.
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page: the id of its last product.
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._:-]+$", example = "mug")]
    pub cursor: Option<String>,
}

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

impl ListProductsQuery {
    pub fn into_parts(self) -> Result<(u32, Option<Cursor>), ApiError> {
        let limit = match self.limit.unwrap_or(DEFAULT_LIMIT) {
            limit @ 1..=MAX_LIMIT => limit,
            other => return Err(ApiError::Invalid(format!("limit must be from 1 to {MAX_LIMIT}, got {other}"))),
        };
        let cursor = self
            .cursor
            .map(|text| {
                ProductId::parse(text).map(|id| Cursor::new(id.as_str())).map_err(|_| {
                    ApiError::Invalid("cursor is not valid: pass the nextCursor of a previous page".to_owned())
                })
            })
            .transpose()?;
        Ok((limit, cursor))
    }
}

/// `page` with the cursor clients see: the id of its last product when a page
/// follows. Every product id is a position (`ListProductsQuery::cursor`'s pattern), so
/// none the document allows is refused.
pub fn with_client_cursor(mut page: Page<ProductView>) -> Page<ProductView> {
    page.next_cursor = page.next_cursor.and(page.items.last().map(|last| last.product_id.as_str().to_owned()));
    page
}
