//! Who asked: the request id and the correlation id every command records.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::HeaderName;
use axum::http::request::Parts;

use crate::server::REQUEST_ID;

/// The header a client (or an upstream service) uses to tie requests together.
pub static CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

/// Ids of the request being served. The correlation id is the client's
/// `x-correlation-id` when it sends a usable one, else the request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// This request's id (`x-request-id`, generated when absent).
    pub request_id: String,
    /// Shared by everything that follows from one customer action.
    pub correlation_id: String,
}

/// An id header we record: 1 to 128 visible ASCII characters (the rule Kafka
/// consumers apply too, `telemetry::is_usable_id`).
pub fn usable_id(value: &axum::http::HeaderValue) -> Option<String> {
    value.to_str().ok().filter(|v| telemetry::is_usable_id(v)).map(str::to_owned)
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &HeaderName| parts.headers.get(name).and_then(usable_id);
        let request_id = header(&REQUEST_ID).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let correlation_id = header(&CORRELATION_ID).unwrap_or_else(|| request_id.clone());
        Ok(Self { request_id, correlation_id })
    }
}
