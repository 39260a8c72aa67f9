//! What protects an instance from slow and abundant requests: the request timeout,
//! the optional rate limit, and the cross-origin (CORS) policy.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{ErrorResponse, HttpSettings};

/// Middleware: answers 503 in the envelope when the rest of the stack takes longer
/// than `limit`. The handler's future is dropped: an in-flight database transaction
/// rolls back, a committed one stays committed.
pub(crate) async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            ErrorResponse::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the request took longer than {} ms; retry later", limit.as_millis()),
            )
            .into_response()
        }
    }
}

/// How much of a refused body is read (and thrown away) at most before answering.
const DRAIN_AT_MOST_BYTES: u64 = 16 * 1024 * 1024;

/// How long reading a refused body may take at most before answering.
const DRAIN_AT_MOST: Duration = Duration::from_secs(5);

/// Middleware: a request whose `Content-Length` exceeds `limit` is answered 413 in the
/// envelope, without running its handler, but only after its body was read and thrown
/// away (up to 16 MiB or 5 seconds; beyond, the connection is closed after the
/// answer). Answering at once would close the connection while the client is still
/// sending: most clients then see a reset (EPIPE) instead of the 413.
pub(crate) async fn refuse_oversized_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let Some(declared) = declared.filter(|length| *length > limit as u64) else { return next.run(request).await };
    let drained = tokio::time::timeout(DRAIN_AT_MOST, drain(request.into_body(), DRAIN_AT_MOST_BYTES)).await;
    let whole_body_read = matches!(drained, Ok(Ok(read)) if read >= declared);
    let mut response =
        ErrorResponse::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is too large (at most {limit} bytes)"))
            .into_response();
    if !whole_body_read {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads `body` to its end or until `at_most` bytes, discarding them; how many it read.
async fn drain(body: axum::body::Body, at_most: u64) -> Result<u64, axum::Error> {
    use futures::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut read = 0u64;
    while read < at_most {
        match chunks.next().await {
            Some(chunk) => read += chunk?.len() as u64,
            None => break,
        }
    }
    Ok(read)
}

/// Paths never rate-limited: probes and scrapes must get through a loaded instance,
/// or the orchestrator restarts (or stops routing to) a pod that is merely busy.
const UNLIMITED_PATHS: [&str; 2] = ["/health/", "/metrics"];

type Limiter = governor::DefaultDirectRateLimiter;

/// The rate limit of `settings`, if one is set: one token bucket for the whole
/// instance (per-client limits belong in front of it, at the gateway). The probes and
/// `/metrics` are not counted and never refused.
pub(crate) fn rate_limiter(settings: &HttpSettings) -> Option<Arc<Limiter>> {
    let per_second = settings.rate_limit_per_second?;
    let burst = settings.rate_limit_burst.unwrap_or(per_second);
    Some(Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(per_second).allow_burst(burst))))
}

/// Middleware: answers 429 once `limiter`'s budget is spent (probes and metrics aside).
pub(crate) async fn rate_limit(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if UNLIMITED_PATHS.iter().any(|unlimited| path.starts_with(unlimited)) {
        return next.run(request).await;
    }
    match limiter.check() {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            too_many_requests(wait.as_secs_f64().ceil().max(1.0) as u64)
        }
    }
}

fn too_many_requests(wait_seconds: u64) -> Response {
    let mut response =
        ErrorResponse::new(StatusCode::TOO_MANY_REQUESTS, format!("too many requests; retry in {wait_seconds} s"))
            .into_response();
    if let Ok(value) = HeaderValue::from_str(&wait_seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The CORS policy of `settings`, if any origin is allowed.
pub(crate) fn cors(settings: &HttpSettings) -> Option<CorsLayer> {
    let origins = settings.cors_origins();
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let values: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|origin| {
                HeaderValue::from_str(origin)
                    .map_err(|_| tracing::warn!(%origin, "ignoring a CORS origin that is not a valid header value"))
                    .ok()
            })
            .collect();
        AllowOrigin::list(values)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT])
            .allow_headers([
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-correlation-id"),
                HeaderName::from_static("traceparent"),
                HeaderName::from_static("tracestate"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}
