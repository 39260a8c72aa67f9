//! The inventory HTTP API: thin handlers that translate a request into one command or
//! query, and the one place where errors become statuses.

mod dto;
mod error;
mod products;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::products::Products;

/// The inventory routes (without the common layers).
pub fn routes(products: Arc<Products>) -> Router {
    Router::new()
        .route("/inventory/products", get(products::list).post(products::add))
        .route("/inventory/products/{product_id}", get(products::get))
        .route("/inventory/products/{product_id}/restock", post(products::restock))
        .route("/inventory/products/{product_id}/events", get(products::history))
        .with_state(products)
}
