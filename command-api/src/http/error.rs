//! How OMS failures reach clients: one exhaustive match from error to status. 4xx
//! messages say what to fix; 5xx bodies are generic and the cause is logged here, without
//! repeating itself ([`ErrorResponse::store_failed`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::order::OrderError;
use http_server::ErrorResponse;

use crate::orders::OrdersError;

/// An error answered by the OMS API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is well-formed JSON but asks for something invalid (422).
    #[error("{0}")]
    Invalid(String),
    /// No such order (404); holds the id as the client sent it.
    #[error("order '{0}' not found")]
    OrderNotFound(String),
    /// The order service failed or refused.
    #[error(transparent)]
    Orders(#[from] OrdersError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let status = match &self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::OrderNotFound(_) => StatusCode::NOT_FOUND,
            Self::Orders(error) => match error {
                OrdersError::NotFound => StatusCode::NOT_FOUND,
                OrdersError::Conflict => StatusCode::CONFLICT,
                OrdersError::Stale { .. } => StatusCode::PRECONDITION_FAILED,
                // Never raised for orders (a placement's key makes the order's id).
                OrdersError::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
                OrdersError::Storage(cause) => {
                    return ErrorResponse::store_failed("the order store", cause).into_response();
                }
                OrdersError::Rejected(rule) => match rule {
                    OrderError::NotFound => StatusCode::NOT_FOUND,
                    OrderError::ItemsLocked { .. }
                    | OrderError::TransitionNotAllowed { .. }
                    | OrderError::PaymentDeadlinePassed { .. } => StatusCode::CONFLICT,
                    OrderError::PlacedWithOtherContent
                    | OrderError::NoItems
                    | OrderError::TooManyItems { .. }
                    | OrderError::DuplicateProduct { .. }
                    | OrderError::NothingToUpdate
                    | OrderError::ItemNotInOrder { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                },
            },
        };
        ErrorResponse::new(status, message).into_response()
    }
}
