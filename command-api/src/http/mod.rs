//! The OMS HTTP API: thin handlers that translate a request into one command or
//! query, and the one place where errors become statuses.

mod dto;
mod error;
pub mod openapi;
mod orders;

use std::sync::Arc;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;

use crate::orders::Orders;

/// The OMS routes (without the common layers), each registered with its
/// documentation, so a route cannot be served undocumented.
pub fn routes(orders: Arc<Orders>) -> OpenApiRouter {
    let mut router = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(orders::list, orders::place))
        .routes(routes!(orders::get, orders::update))
        .routes(routes!(orders::history));
    openapi::add_request_rules(router.get_openapi_mut());
    router.with_state(orders)
}
