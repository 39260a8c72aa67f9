//! Request and query shapes of the inventory API. Fields are domain types, so a value
//! that breaks a rule is refused while parsing, with a message naming its field.

use domain::inventory::{AddProduct, ProductName};
use domain::{ProductId, Quantity};
use projections::Cursor;
use serde::Deserialize;

use super::ApiError;

/// `POST /inventory/products`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddProductRequest {
    pub product_id: ProductId,
    pub name: ProductName,
    /// Units on hand; zero is allowed (announced as out of stock).
    pub quantity: u32,
    #[serde(default)]
    pub low_stock_threshold: u32,
}

impl AddProductRequest {
    pub fn into_command(self) -> (ProductId, AddProduct) {
        let add = AddProduct { name: self.name, initial_stock: self.quantity, low_stock_threshold: self.low_stock_threshold };
        (self.product_id, add)
    }
}

/// `POST /inventory/products/{id}/restock`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestockRequest {
    pub quantity: Quantity,
}

/// `GET /inventory/products` query parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListProductsQuery {
    pub limit: Option<u32>,
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
                Cursor::decode(&text)
                    .ok()
                    .filter(|c| ProductId::parse(c.position()).is_ok())
                    .ok_or_else(|| ApiError::Invalid("cursor is not valid: pass the nextCursor of a previous page".to_owned()))
            })
            .transpose()?;
        Ok((limit, cursor))
    }
}
