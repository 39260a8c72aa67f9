//! How inventory failures reach clients: one exhaustive match from error to status.
//! 4xx messages say what to fix; 5xx bodies are generic and the cause is logged here,
//! without repeating itself ([`ErrorResponse::store_failed`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::inventory::ProductError;
use http_server::ErrorResponse;

use crate::products::ProductsError;

/// An error answered by the inventory API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is well-formed JSON but asks for something invalid (422).
    #[error("{0}")]
    Invalid(String),
    /// No such product (404); holds the id as the client sent it.
    #[error("product '{0}' not found")]
    ProductNotFound(String),
    /// The id of a product being added is taken (409).
    #[error("product '{0}' already exists")]
    ProductExists(String),
    /// The product service failed or refused.
    #[error(transparent)]
    Products(#[from] ProductsError),
}

impl ApiError {
    /// An error of an operation on `product_id`, naming the product when it is the
    /// product itself that is missing or taken.
    pub fn about(product_id: &domain::ProductId, error: ProductsError) -> Self {
        match error {
            ProductsError::NotFound | ProductsError::Rejected(ProductError::NotFound) => {
                Self::ProductNotFound(product_id.to_string())
            }
            ProductsError::Rejected(ProductError::AlreadyExists) => Self::ProductExists(product_id.to_string()),
            other => Self::Products(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let status = match &self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ProductNotFound(_) => StatusCode::NOT_FOUND,
            Self::ProductExists(_) => StatusCode::CONFLICT,
            Self::Products(error) => match error {
                ProductsError::NotFound | ProductsError::Rejected(ProductError::NotFound) => StatusCode::NOT_FOUND,
                ProductsError::Conflict
                | ProductsError::Rejected(ProductError::AlreadyExists | ProductError::NotEnoughAvailable { .. }) => {
                    StatusCode::CONFLICT
                }
                ProductsError::Stale { .. } => StatusCode::PRECONDITION_FAILED,
                ProductsError::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
                ProductsError::Storage(cause) => {
                    return ErrorResponse::store_failed("the inventory store", cause).into_response();
                }
            },
        };
        ErrorResponse::new(status, message).into_response()
    }
}
