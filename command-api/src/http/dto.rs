//! Request and query shapes of the OMS API. Fields are domain types, so a value that
//! breaks a rule is refused while parsing, with a message naming its field.

use domain::order::{
    ItemStatus, ItemUpdate, OrderError, OrderLine, OrderStatus, PlaceOrder, TargetStatus, UpdateOrder,
};
use domain::{OrderId, ProductId, Quantity, UserId};
use projections::{AsOf, Cursor, OrderFilter, OrderView};
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::openapi::ItemChangeStatusSchema;

/// `POST /oms/orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PlaceOrder)]
pub struct PlaceOrderRequest {
    /// Who orders: 1 to 128 characters, none of them white space or a control
    /// character.
    #[schema(value_type = String, min_length = 1, max_length = 128, example = "u-1",
        pattern = r"^[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+$")]
    pub user_id: UserId,
    /// One line per product (a product given twice is refused), 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub order_items: Vec<OrderLineRequest>,
}

/// One line of a new order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = OrderLine)]
pub struct OrderLineRequest {
    /// The product: 1 to 64 letters, digits and `. _ : -`.
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._:-]+$", example = "mug")]
    pub product_id: ProductId,
    /// Units, from 1 to 1,000,000.
    #[serde(deserialize_with = "http_server::extract::whole_number")]
    #[schema(value_type = u32, minimum = 1, maximum = 1_000_000, example = 2)]
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

/// `PUT /oms/orders/{orderId}`: item changes, a status, or both (items first, all or
/// nothing); a status or at least one item change.
// The document states the last rule beside the fields (`openapi::add_request_rules`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = UpdateOrder)]
pub struct UpdateOrderRequest {
    /// The status to move to; asking for the current one changes nothing. `PAID` is
    /// refused (409, naming the deadline) once the payment deadline canceled the order.
    #[schema(value_type = Option<TargetStatus>)]
    pub status: Option<OrderStatus>,
    /// Item changes, at most one per product (so at most 100: an order holds no more).
    #[schema(max_items = 100)]
    pub order_items: Option<Vec<ItemUpdateRequest>>,
}

/// One item change: a quantity to set (adding the item if new; status `PENDING` or
/// none), or status `CANCELED` to cancel it (no quantity).
// The document states this rule beside the fields (`openapi::add_request_rules`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ItemUpdate)]
pub struct ItemUpdateRequest {
    /// The product.
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._:-]+$", example = "mug")]
    pub product_id: ProductId,
    /// Units the item should have, from 1 to 1,000,000.
    #[serde(default, deserialize_with = "http_server::extract::whole_number")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1_000_000, example = 3)]
    pub quantity: Option<Quantity>,
    /// `CANCELED` to cancel the item; a client cannot set `EXECUTED`.
    #[schema(value_type = Option<ItemChangeStatusSchema>)]
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
                OrderStatus::Pending | OrderStatus::Executed | OrderStatus::PartiallyExecuted => {
                    Err(ApiError::Invalid(format!(
                        "status: {status} is set by the system; a client may set PAID, SHIPPED, DELIVERED or CANCELED"
                    )))
                }
            })
            .transpose()?;
        let items = self
            .order_items
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, item)| item.into_update(index))
            .collect::<Result<Vec<_>, _>>()?;
        // Refused here, before any precondition: a body asking for nothing is the
        // client's mistake whatever the order's version (422, not 412).
        if items.is_empty() && status.is_none() {
            return Err(ApiError::Invalid(OrderError::NothingToUpdate.to_string()));
        }
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
            (Some(_), Some(ItemStatus::Canceled)) => {
                Err(ApiError::Invalid(format!("{at}: give either a quantity or status CANCELED, not both")))
            }
            (None, Some(ItemStatus::Canceled)) => Ok(ItemUpdate::Cancel { product_id: self.product_id }),
            (Some(quantity), None | Some(ItemStatus::Pending)) => {
                Ok(ItemUpdate::SetQuantity { product_id: self.product_id, quantity })
            }
            (None, None | Some(ItemStatus::Pending)) => {
                Err(ApiError::Invalid(format!("{at}: give a quantity to set, or status CANCELED to cancel the item")))
            }
        }
    }
}

/// `GET /oms/orders/{orderId}` query parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetOrderQuery {
    /// See [`GetOrderQuery::into_params`].
    #[serde(default, deserialize_with = "http_server::as_of::deserialize")]
    pub as_of: Option<AsOf>,
}

impl IntoParams for GetOrderQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![http_server::as_of::as_of_parameter(
            "The order as it was, folded from its events: right after this version (1, 2, ...), or with every \
             event recorded by this RFC 3339 time.",
        )]
    }
}

/// The headers of `POST /oms/orders`.
pub struct PlaceOrderHeaders;

impl IntoParams for PlaceOrderHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![http_server::headers::idempotency_key_parameter(
            "1 to 255 visible ASCII characters. Retries with the same key (and user) return the same order, even \
             concurrently; the same key with a different body is 422.",
        )]
    }
}

/// The headers of `PUT /oms/orders/{orderId}`.
pub struct UpdateOrderHeaders;

impl IntoParams for UpdateOrderHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![http_server::headers::if_match_parameter(
            "Only if the order is still at this version: its `ETag` as read, e.g. `\"3\"` (a list, or `*` for \
             any; a weak tag never matches). Without it the write does not check.",
        )]
    }
}

/// `GET /oms/orders` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListOrdersQuery {
    /// Only this customer's orders.
    #[param(value_type = Option<String>, example = "u-1", min_length = 1, max_length = 128,
        pattern = r"^[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+$")]
    pub user_id: Option<UserId>,
    /// Only orders with this status.
    #[param(value_type = Option<OrderStatus>)]
    pub status: Option<OrderStatus>,
    /// Page size, from 1 to 100; 20 when omitted.
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page: the position after its last order, its
    /// `createdAt` in microseconds since 1970 and its `orderId`.
    #[param(
        pattern = r"^(?:0|[1-9][0-9]{0,16})\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "1796140800000000.6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b"
    )]
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
            .map(|text| {
                read_cursor(&text).ok_or_else(|| {
                    ApiError::Invalid("cursor is not valid: pass the nextCursor of a previous page".to_owned())
                })
            })
            .transpose()?;
        Ok((OrderFilter { user_id: self.user_id, status: self.status }, limit, cursor))
    }
}

/// The largest `createdAt` a cursor may name, in microseconds since 1970 (17 digits,
/// in the year 5138): far beyond any order, and within what PostgreSQL holds.
const MOST_CURSOR_MICROS: i64 = 99_999_999_999_999_999;

/// The `nextCursor` after `last`, the last order of a page: its `createdAt` in
/// microseconds and its id, `1796140800000000.6f1c2a9e-…`. Every string of this form
/// (`ListOrdersQuery::cursor`'s pattern) is a position, so none the document allows
/// is refused.
pub fn next_cursor(last: &OrderView) -> String {
    format!("{}.{}", last.created_at.timestamp_micros(), last.order_id)
}

/// The position a client's cursor names, when it is written as [`next_cursor`]
/// writes them (digits without leading zeros, a lower-case hyphenated id).
fn read_cursor(text: &str) -> Option<Cursor> {
    let (micros_text, id_text) = text.split_once('.')?;
    let canonical = !micros_text.is_empty()
        && micros_text.bytes().all(|b| b.is_ascii_digit())
        && (micros_text == "0" || !micros_text.starts_with('0'));
    let micros: i64 = micros_text.parse().ok().filter(|m| canonical && (0..=MOST_CURSOR_MICROS).contains(m))?;
    let order_id: OrderId = id_text.parse().ok()?;
    (order_id.to_string() == id_text).then(|| Cursor::new(format!("{micros}|{order_id}")))
}

/// The page size asked for, within bounds.
pub fn checked_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => Ok(limit),
        other => Err(ApiError::Invalid(format!("limit must be from 1 to {MAX_LIMIT}, got {other}"))),
    }
}
