//! The response envelope: `{"success": bool, "data": …|null, "error": string|null}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A successful answer: `status` with `data` in the envelope.
#[derive(Debug)]
pub struct ApiResponse<T> {
    status: StatusCode,
    data: T,
    version: Option<u64>,
    next_page: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    success: bool,
    data: Option<&'a T>,
    error: Option<&'a str>,
}

impl<T: Serialize> ApiResponse<T> {
    /// 200 with `data`.
    pub fn ok(data: T) -> Self {
        Self { status: StatusCode::OK, data, version: None, next_page: None }
    }

    /// 201 with `data`.
    pub fn created(data: T) -> Self {
        Self { status: StatusCode::CREATED, data, version: None, next_page: None }
    }

    /// The same, with `ETag: "<version>"`: `data` is that version of one resource,
    /// which a client may name in `If-Match` when it writes.
    pub fn versioned(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }

    /// The same, with `Link: <next_page>; rel="next"` (a value from
    /// [`crate::history::next_page_link`]) when there is a next page.
    pub fn next_page(mut self, link: Option<String>) -> Self {
        self.next_page = link;
        self
    }
}

impl<T: Serialize> IntoResponse for ApiResponse<T> {
    fn into_response(self) -> Response {
        let body = Envelope { success: true, data: Some(&self.data), error: None };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(version) = self.version
            && let Ok(tag) = HeaderValue::from_str(&format!("\"{version}\""))
        {
            response.headers_mut().insert(header::ETAG, tag);
        }
        if let Some(link) = self.next_page
            && let Ok(link) = HeaderValue::from_str(&link)
        {
            response.headers_mut().insert(header::LINK, link);
        }
        response
    }
}

/// A failed answer: a status and a message for the client. The only way an error
/// leaves a service; 5xx messages must be generic (the cause is logged, not sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// What the client reads.
    pub message: String,
}

impl ErrorResponse {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 500 with a generic message; log the cause where it is handled.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; it has been logged")
    }

    /// 503: a dependency is down.
    pub fn unavailable(what: &str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what} is unavailable; retry later"))
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let body: Envelope<'_, ()> = Envelope { success: false, data: None, error: Some(&self.message) };
        (self.status, Json(body)).into_response()
    }
}
