//! The response envelope: `{"success": bool, "data": …|null, "error": string|null}`.

use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Instant;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use telemetry::repeats::{REPEAT_WINDOW, Repeats, shape, with_repeats};

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

    /// 503 for a request that `what` (a store) failed, its `cause` logged at ERROR
    /// the first time and then once a minute while causes like it keep coming, with
    /// how many came meanwhile: a database that refuses writes fails every request, and
    /// a line each (55,560 in 45 s of one) would bury everything else.
    pub fn store_failed(what: &str, cause: &dyn std::fmt::Display) -> Self {
        static FAILURES: LazyLock<Mutex<Repeats>> = LazyLock::new(|| Mutex::new(Repeats::new(REPEAT_WINDOW)));
        let cause = cause.to_string();
        let admitted = FAILURES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(shape(&format!("{what}: {cause}")), Instant::now());
        match admitted {
            Some(repeats) => tracing::error!(store = what, cause = %with_repeats(&cause, repeats), "storage failure"),
            None => tracing::debug!(store = what, %cause, "storage failure"),
        }
        Self::unavailable(what)
    }
}

/// How long a client is asked to wait before it tries a 503 again. The service cannot
/// know when its dependency comes back; a second spares it the clients that would
/// retry at once (measured: 55,560 retries in 45 s of a read-only database from 150
/// clients that did).
const RETRY_UNAVAILABLE_AFTER_SECS: u64 = 1;

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let body: Envelope<'_, ()> = Envelope { success: false, data: None, error: Some(&self.message) };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_UNAVAILABLE_AFTER_SECS));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use telemetry::testing::Written;

    use super::*;

    #[test]
    fn a_store_failure_that_repeats_is_logged_once_at_error_and_every_request_answered_503() {
        let written = Written::default();
        let writer = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let answers: Vec<ErrorResponse> = tracing::subscriber::with_default(subscriber, || {
            (0..100)
                .map(|request| {
                    let cause = format!("cannot execute INSERT in a read-only transaction (request {request})");
                    ErrorResponse::store_failed("the test store", &cause)
                })
                .collect()
        });
        assert!(answers.iter().all(|answer| answer.status == StatusCode::SERVICE_UNAVAILABLE));
        let text = written.text();
        let errors = text.lines().filter(|line| line.contains("ERROR")).count();
        let held_back = text.lines().filter(|line| line.contains("DEBUG")).count();
        assert_eq!((errors, held_back), (1, 99), "{text}");
    }
}
