//! HTTP metrics: every answer counted and timed by method, route template and
//! status, and `/metrics`, which renders the process's metrics for Prometheus.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use telemetry::names;

/// The `route` label of a request no route matched (404), so scanners probing
/// random paths cannot grow the number of series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Middleware: counts and times the request under its route template, which the
/// router left in the response (`server::note_route`); a request no route matched is
/// counted, and its span named, as [`UNMATCHED_ROUTE`].
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = match response.extensions().get::<MatchedPath>() {
        Some(route) => route.as_str(),
        None => {
            crate::server::name_span(&tracing::Span::current(), &method, UNMATCHED_ROUTE);
            UNMATCHED_ROUTE
        }
    };
    let (requests, duration) = series(method_label(&method), route, response.status());
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    response
}

/// The counter and histogram of one (method, route, status). Registered once and kept:
/// registering resolves the labels in the recorder's registry, which cost each request
/// two lookups and three label strings. The labels are bounded (standard methods,
/// route templates, the statuses the service answers), and so is this map.
fn series(method: &'static str, route: &str, status: StatusCode) -> (Counter, Histogram) {
    type Series = HashMap<(&'static str, u16), HashMap<Box<str>, (Counter, Histogram)>>;
    static SERIES: LazyLock<RwLock<Series>> = LazyLock::new(RwLock::default);
    let key = (method, status.as_u16());
    if let Some(known) = SERIES.read().unwrap_or_else(PoisonError::into_inner).get(&key).and_then(|by| by.get(route)) {
        return known.clone();
    }
    let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.as_str().to_owned())];
    let registered =
        (metrics::counter!(names::HTTP_REQUESTS, &labels), metrics::histogram!(names::HTTP_REQUEST_DURATION, &labels));
    let mut series = SERIES.write().unwrap_or_else(PoisonError::into_inner);
    series.entry(key).or_default().entry(route.into()).or_insert(registered).clone()
}

/// The `method` label: a standard method's name, else `OTHER`, so invented methods
/// cannot grow the number of series either.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    STANDARD.iter().find(|m| *m == method).map_or("OTHER", Method::as_str)
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "This process's metrics in the Prometheus text format (not the envelope).",
        content_type = "text/plain; version=0.0.4", body = String,
        example = "# TYPE http_requests_total counter\nhttp_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"} 3\n")))]
pub(crate) async fn render() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], telemetry::recorder::render())
}
