//! Handlers of `/oms/orders`: request in, one command or query, response out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use domain::OrderId;
use domain::order::OrderCommand;
use eventstore::{EventMetadata, StoredEvent};
use http_server::{ApiJson, ApiPath, ApiQuery, ApiResponse, RequestContext};
use projections::{OrderView, Page};

use super::ApiError;
use super::dto::{ListOrdersQuery, PlaceOrderRequest, UpdateOrderRequest, idempotency_key};
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
pub async fn place(
    State(orders): State<Arc<Orders>>,
    context: RequestContext,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PlaceOrderRequest>,
) -> Result<OrderView> {
    let key = headers.get("idempotency-key").map(idempotency_key).transpose()?;
    let command = request.into_command(key.clone());
    let command_metadata = metadata(&context);
    let order = match key {
        Some(key) => {
            let order_id = OrderId::for_idempotency_key(&command.user_id, &key);
            orders.execute(order_id, OrderCommand::PlaceOrder(command), &command_metadata).await?
        }
        None => orders.place_new(OrderId::generate(), OrderCommand::PlaceOrder(command), &command_metadata).await?,
    };
    Ok(ApiResponse::created(order))
}

/// `GET /oms/orders/{orderId}`.
pub async fn get(State(orders): State<Arc<Orders>>, path: ApiPath) -> Result<OrderView> {
    let order = orders.get(order_id(path)?).await?;
    Ok(ApiResponse::ok(order))
}

/// `PUT /oms/orders/{orderId}`: change items and/or the status.
pub async fn update(
    State(orders): State<Arc<Orders>>,
    context: RequestContext,
    path: ApiPath,
    ApiJson(request): ApiJson<UpdateOrderRequest>,
) -> Result<OrderView> {
    let order_id = order_id(path)?;
    let command = request.into_command()?;
    let order = orders.execute(order_id, OrderCommand::UpdateOrder(command), &metadata(&context)).await?;
    Ok(ApiResponse::ok(order))
}

/// `GET /oms/orders?userId=&status=&limit=&cursor=`: newest first.
pub async fn list(State(orders): State<Arc<Orders>>, ApiQuery(query): ApiQuery<ListOrdersQuery>) -> Result<Page<OrderView>> {
    let (filter, limit, cursor) = query.into_parts()?;
    Ok(ApiResponse::ok(orders.list(&filter, limit, cursor.as_ref()).await?))
}

/// `GET /oms/orders/{orderId}/events`: the order's history, oldest first.
pub async fn history(State(orders): State<Arc<Orders>>, path: ApiPath) -> Result<Vec<StoredEvent>> {
    Ok(ApiResponse::ok(orders.history(order_id(path)?).await?))
}
