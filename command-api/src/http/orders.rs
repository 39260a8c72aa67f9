//! Handlers of `/oms/orders`: request in, one command or query, response out.

use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use domain::OrderId;
use domain::order::OrderCommand;
use eventstore::{EventMetadata, StoredEvent};
use http_server::history::{HistoryQuery, next_page_link};
use http_server::{ApiJson, ApiPath, ApiQuery, ApiResponse, IfMatch, RequestContext};
use projections::{OrderView, Page};

use http_server::openapi::{ConditionalWrite, NotFound};
use http_server::{Failure, Page as PageSchema, Success};
use serde_json::json;

use super::ApiError;
use super::dto::{
    GetOrderQuery, ListOrdersQuery, PlaceOrderHeaders, PlaceOrderRequest, UpdateOrderHeaders, UpdateOrderRequest,
    next_cursor,
};
use super::openapi::{OrderResource, failure, order_example, success};
use crate::orders::Orders;

type Result<T> = std::result::Result<ApiResponse<T>, ApiError>;

const ACTOR: &str = "oms-http";

fn metadata(context: &RequestContext) -> EventMetadata {
    EventMetadata::new(&context.correlation_id, &context.request_id, ACTOR)
}

/// An order id from the path; one that cannot exist is simply not found.
fn order_id(ApiPath(raw): ApiPath) -> std::result::Result<OrderId, ApiError> {
    raw.parse().map_err(|_| ApiError::OrderNotFound(raw))
}

/// `POST /oms/orders`: place an order. With an `Idempotency-Key`, retries return the
/// same order and never create a second one.
#[utoipa::path(post, path = "/oms/orders", tag = "orders", summary = "Place an order",
    params(PlaceOrderHeaders),
    request_body(content = PlaceOrderRequest, example = json!({"userId": "u-1", "orderItems": [{"productId": "mug", "quantity": 2}]})),
    responses(
        (status = 201, description = "The order; every item `PENDING` until the inventory service answers.", body = Success<OrderView>,
            example = json!(success(order_example("PENDING", "PENDING")))),
        (status = 422, description = "A value breaks a rule: no items, too many, a product twice, a bad quantity or id, a bad `Idempotency-Key`, or the key reused with another body.", body = Failure,
            example = json!(failure("orderItems[0].quantity: must be a whole number from 1 to 1000000, got 0"))),
    ))]
pub async fn place(
    State(orders): State<Arc<Orders>>,
    context: RequestContext,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PlaceOrderRequest>,
) -> Result<OrderView> {
    let key = http_server::idempotency_key(&headers).map_err(ApiError::Invalid)?;
    let command = request.into_command(key.clone());
    let command_metadata = metadata(&context);
    // A key names the order it places; most keys are new, so both paths append
    // without reading first, and a retry's append conflicts and reads the order.
    let order_id = match &key {
        Some(key) => OrderId::for_idempotency_key(&command.user_id, key),
        None => OrderId::generate(),
    };
    let order = orders.place_new(order_id, OrderCommand::PlaceOrder(command), &command_metadata).await?;
    let version = order.version;
    Ok(ApiResponse::created(order).versioned(version))
}

/// `GET /oms/orders/{orderId}`.
/// With `asOf`, the order as it was then, folded from its events (not the view).
#[utoipa::path(get, path = "/oms/orders/{orderId}", tag = "orders", summary = "Get an order, now or as it was",
    params(("orderId" = String, Path, description = "The order's id (a UUID)."), GetOrderQuery),
    responses(
        (status = 200, description = "The order.", body = Success<OrderView>, headers(("ETag" = String, description = "The order's version, quoted (e.g. `\"3\"`): send it as `If-Match` to write only if nobody changed it meanwhile.")), example = json!(success(order_example("EXECUTED", "EXECUTED")))),
        (status = 404, description = "No such order (or it had no such version, or did not exist yet at that time).", body = Failure, example = json!(failure("order '6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b' not found"))),
        (status = 422, description = "`asOf` is neither a version nor an RFC 3339 time.", body = Failure, example = json!(failure("invalid query parameter 'asOf': versions start at 1"))),
    ))]
pub async fn get(
    State(orders): State<Arc<Orders>>,
    path: ApiPath,
    ApiQuery(query): ApiQuery<GetOrderQuery>,
) -> Result<OrderView> {
    let order_id = order_id(path)?;
    let order = match query.as_of {
        Some(as_of) => orders.as_of(order_id, as_of).await?,
        None => orders.get(order_id).await?,
    };
    let version = order.version;
    Ok(ApiResponse::ok(order).versioned(version))
}

/// `PUT /oms/orders/{orderId}`: change items and/or the status.
#[utoipa::path(put, path = "/oms/orders/{orderId}", tag = "orders", summary = "Change items and/or the status",
    params(("orderId" = String, Path, description = "The order's id (a UUID)."), UpdateOrderHeaders),
    request_body(content = UpdateOrderRequest, example = json!({"orderItems": [{"productId": "mug", "quantity": 3}, {"productId": "tea", "quantity": 1}]})),
    responses(
        (status = 200, description = "The order as it now is; changed items are `PENDING` again.", body = Success<OrderView>, headers(("ETag" = String, description = "The order's version, quoted (e.g. `\"3\"`): send it as `If-Match` to write only if nobody changed it meanwhile.")),
            example = json!(success(order_example("PAID", "EXECUTED")))),
        NotFound::<OrderResource>, ConditionalWrite::<OrderResource>,
        (status = 409, description = "The order's state forbids it: the transition is not allowed, the items are locked (paid or canceled), or concurrent writers kept winning.", body = Failure,
            example = json!(failure("cannot move an order from SHIPPED to CANCELED"))),
        (status = 422, description = "A value breaks a rule: nothing to update, a status the system sets, `EXECUTED` for an item, a quantity with `CANCELED`, a product twice, an item to cancel that the order does not have, more than 100 items once the changes are made.", body = Failure,
            example = json!(failure("orderItems[0].status: a client cannot set an item to EXECUTED; the inventory service does"))),
    ))]
pub async fn update(
    State(orders): State<Arc<Orders>>,
    context: RequestContext,
    path: ApiPath,
    IfMatch(versions): IfMatch,
    ApiJson(request): ApiJson<UpdateOrderRequest>,
) -> Result<OrderView> {
    let order_id = order_id(path)?;
    let command = request.into_command()?;
    let command = OrderCommand::UpdateOrder(command);
    let order = orders.execute_if(order_id, versions.as_deref(), command, &metadata(&context)).await?;
    let version = order.version;
    Ok(ApiResponse::ok(order).versioned(version))
}

/// `GET /oms/orders?userId=&status=&limit=&cursor=`: newest first.
#[utoipa::path(get, path = "/oms/orders", tag = "orders", summary = "List orders, newest first",
    params(ListOrdersQuery),
    responses(
        (status = 200, description = "A page of orders, newest first.", body = Success<PageSchema<OrderView>>,
            example = json!(success(json!({"items": [order_example("EXECUTED", "EXECUTED")], "nextCursor": null})))),
        (status = 422, description = "A parameter does not fit: a bad userId, status or limit, or a cursor not written as `nextCursor` writes them.", body = Failure,
            example = json!(failure("limit must be from 1 to 100, got 0"))),
    ))]
pub async fn list(
    State(orders): State<Arc<Orders>>,
    ApiQuery(query): ApiQuery<ListOrdersQuery>,
) -> Result<Page<OrderView>> {
    let (filter, limit, cursor) = query.into_parts()?;
    let mut page = orders.list(&filter, limit, cursor.as_ref()).await?;
    // The list says whether a page follows; the cursor clients see is ours.
    page.next_cursor = page.next_cursor.and(page.items.last().map(next_cursor));
    Ok(ApiResponse::ok(page))
}

/// `GET /oms/orders/{orderId}/events`: the order's history, oldest first.
#[utoipa::path(get, path = "/oms/orders/{orderId}/events", tag = "orders", summary = "An order's history",
    params(("orderId" = String, Path, description = "The order's id (a UUID)."), HistoryQuery),
    responses(
        (status = 200, description = "A page of the order's events, oldest first (all of them unless more than `limit`); folding all gives the order.", body = Success<Vec<StoredEvent>>, headers(("Link" = String, description = "While more events follow: `<…/events?from=N&limit=M>; rel=\"next\"`, the next page."))),
        NotFound::<OrderResource>,
        (status = 422, description = "`from` or `limit` out of range.", body = Failure, example = json!(failure("limit must be from 1 to 1000, got 0"))),
    ))]
pub async fn history(
    State(orders): State<Arc<Orders>>,
    OriginalUri(uri): OriginalUri,
    path: ApiPath,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Vec<StoredEvent>> {
    let order_id = order_id(path)?;
    let (from, limit) = query.range().map_err(ApiError::Invalid)?;
    let page = orders.history(order_id, from, limit).await?;
    let next = page.next_from.map(|next| next_page_link(uri.path(), next, limit));
    Ok(ApiResponse::ok(page.events).next_page(next))
}
