//! The OMS HTTP API: thin handlers that translate a request into one command or
//! query, and the one place where errors become statuses.

mod dto;
mod error;
mod orders;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use error::ApiError;

use crate::orders::Orders;

/// The OMS routes (without the common layers).
pub fn routes(orders: Arc<Orders>) -> Router {
    Router::new()
        .route("/oms/orders", get(orders::list).post(orders::place))
        .route("/oms/orders/{order_id}", get(orders::get).put(orders::update))
        .route("/oms/orders/{order_id}/events", get(orders::history))
        .with_state(orders)
}
