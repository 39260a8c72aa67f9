//! Request and query shapes of the inventory API. Fields are domain types, so a value
//! that breaks a rule is refused while parsing, with a message naming its field.

use domain::inventory::{AddProduct, AdjustmentReason, ProductName, UnitChange, UpdateProduct};
use domain::{ProductId, Quantity};
use projections::{AsOf, Cursor};
use serde::Deserialize;
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
    /// Display name: 1 to 200 characters, not blank.
    #[schema(value_type = String, min_length = 1, max_length = 200, example = "Mug")]
    pub name: ProductName,
    /// Units on hand; zero is allowed (announced as out of stock).
    #[schema(example = 100)]
    pub quantity: u32,
    /// At or below this many available units, stock is low; 0 when omitted.
    #[serde(default)]
    #[schema(example = 10)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = UpdateProduct)]
pub struct UpdateProductRequest {
    /// Display name: 1 to 200 characters, not blank.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, example = "Big mug")]
    pub name: Option<ProductName>,
    /// At or below this many available units, stock is low.
    #[schema(example = 5)]
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
    #[schema(value_type = u32, minimum = 1, maximum = 1_000_000, example = 50)]
    pub quantity: Quantity,
}

/// `GET /inventory/products/{productId}` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct GetProductQuery {
    /// The product as it was, folded from its events: right after this version (1,
    /// 2, ...), or with every event recorded by this RFC 3339 time.
    #[param(value_type = Option<String>, example = "2")]
    pub as_of: Option<AsOf>,
}

/// `GET /inventory/products` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListProductsQuery {
    /// Page size, from 1 to 100; 20 when omitted.
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
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
                Cursor::decode(&text).ok().filter(|c| ProductId::parse(c.position()).is_ok()).ok_or_else(|| {
                    ApiError::Invalid("cursor is not valid: pass the nextCursor of a previous page".to_owned())
                })
            })
            .transpose()?;
        Ok((limit, cursor))
    }
}
