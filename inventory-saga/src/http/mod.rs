//! The inventory HTTP API: thin handlers that translate a request into one command or
//! query, and the one place where errors become statuses.

mod dto;
mod error;
pub mod openapi;
mod products;

use std::sync::Arc;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;

use crate::products::Products;

/// The inventory routes (without the common layers), each registered with its
/// documentation, so a route cannot be served undocumented.
pub fn routes(products: Arc<Products>) -> OpenApiRouter {
    let mut router = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(products::list, products::add))
        .routes(routes!(products::get, products::update))
        .routes(routes!(products::restock))
        .routes(routes!(products::adjust))
        .routes(routes!(products::history));
    openapi::add_request_rules(router.get_openapi_mut());
    router.with_state(products)
}
