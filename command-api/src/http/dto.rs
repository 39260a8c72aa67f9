//! Request and query shapes of the OMS API. Fields are domain types, so a value that
//! breaks a rule is refused while parsing, with a message naming its field.

use domain::order::{ItemStatus, ItemUpdate, OrderLine, OrderStatus, PlaceOrder, TargetStatus, UpdateOrder};
use domain::{ProductId, Quantity, UserId};
use projections::{Cursor, OrderFilter, OrderViews};
use serde::Deserialize;

use super::ApiError;

/// `POST /oms/orders`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub user_id: UserId,
    pub order_items: Vec<OrderLineRequest>,
}

/// One line of a new order.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLineRequest {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

impl PlaceOrderRequest {
    /// The command, carrying the request's `Idempotency-Key` (already checked).
    pub fn into_command(self, idempotency_key: Option<String>) -> PlaceOrder {
        PlaceOrder {
            user_id: self.user_id,
            idempotency_key,
            items: self
                .order_items
                .into_iter()
                .map(|line| OrderLine { product_id: line.product_id, quantity: line.quantity })
                .collect(),
        }
    }
}

/// `PUT /oms/orders/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOrderRequest {
    pub status: Option<OrderStatus>,
    pub order_items: Option<Vec<ItemUpdateRequest>>,
}

/// One item change.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemUpdateRequest {
    pub product_id: ProductId,
    pub quantity: Option<Quantity>,
    pub status: Option<ItemStatus>,
}

impl UpdateOrderRequest {
    pub fn into_command(self) -> Result<UpdateOrder, ApiError> {
        let status = self
            .status
            .map(|status| match status {
                OrderStatus::Paid => Ok(TargetStatus::Paid),
                OrderStatus::Shipped => Ok(TargetStatus::Shipped),
                OrderStatus::Delivered => Ok(TargetStatus::Delivered),
                OrderStatus::Canceled => Ok(TargetStatus::Canceled),
                OrderStatus::Pending | OrderStatus::Executed | OrderStatus::PartiallyExecuted => Err(ApiError::Invalid(format!(
                    "status: {status} is set by the system; a client may set PAID, SHIPPED, DELIVERED or CANCELED"
                ))),
            })
            .transpose()?;
        let items = self
            .order_items
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, item)| item.into_update(index))
            .collect::<Result<_, _>>()?;
        Ok(UpdateOrder { items, status })
    }
}

impl ItemUpdateRequest {
    fn into_update(self, index: usize) -> Result<ItemUpdate, ApiError> {
        let at = format!("orderItems[{index}]");
        match (self.quantity, self.status) {
            (_, Some(ItemStatus::Executed)) => Err(ApiError::Invalid(format!(
                "{at}.status: a client cannot set an item to EXECUTED; the inventory service does"
            ))),
            (Some(_), Some(ItemStatus::Canceled)) => Err(ApiError::Invalid(format!(
                "{at}: give either a quantity or status CANCELED, not both"
            ))),
            (None, Some(ItemStatus::Canceled)) => Ok(ItemUpdate::Cancel { product_id: self.product_id }),
            (Some(quantity), None | Some(ItemStatus::Pending)) => Ok(ItemUpdate::SetQuantity { product_id: self.product_id, quantity }),
            (None, None | Some(ItemStatus::Pending)) => Err(ApiError::Invalid(format!(
                "{at}: give a quantity to set, or status CANCELED to cancel the item"
            ))),
        }
    }
}

/// `GET /oms/orders` query parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOrdersQuery {
    pub user_id: Option<UserId>,
    pub status: Option<OrderStatus>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Page size bounds of the list.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

impl ListOrdersQuery {
    pub fn into_parts(self) -> Result<(OrderFilter, u32, Option<Cursor>), ApiError> {
        let limit = checked_limit(self.limit)?;
        let cursor = self
            .cursor
            .map(|text| OrderViews::parse_cursor(&text).map_err(|e| ApiError::Invalid(e.to_string())))
            .transpose()?;
        Ok((OrderFilter { user_id: self.user_id, status: self.status }, limit, cursor))
    }
}

/// The page size asked for, within bounds.
pub fn checked_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => Ok(limit),
        other => Err(ApiError::Invalid(format!("limit must be from 1 to {MAX_LIMIT}, got {other}"))),
    }
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn idempotency_key(value: &axum::http::HeaderValue) -> Result<String, ApiError> {
    value
        .to_str()
        .ok()
        .filter(|key| (1..=255).contains(&key.len()) && key.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Invalid("Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned()))
}
