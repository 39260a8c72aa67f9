//! Serving: the middleware stack every route runs through, envelope fallbacks,
//! the operations routes (probes, metrics, API document), graceful shutdown.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::connections::{ConnectionLimits, serve_connections};
use crate::context::{CORRELATION_ID, usable_id};
use crate::health::{self, Readiness};
use crate::supervisor::Supervisor;
use crate::{ErrorResponse, HttpSettings, limits, metrics, openapi};

/// The header carrying a request's id, generated when the client sends none.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Where the API document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Where the browsable API page is served.
pub const DOCS_PATH: &str = "/docs";

/// Completes a service's router: its documented `routes`, plus `/health/live`,
/// `/health/ready` (running `readiness`), `/metrics`, `/openapi.json` and `/docs`;
/// envelope fallbacks for unknown routes and methods; and, around all of it, from the
/// outside in: request ids, a tracing span, metrics, CORS, the rate limit, the request
/// timeout and the body limit.
///
/// The stack wraps the router once, as one service. Layered on the router itself, it
/// would wrap every route, and axum clones a route's layered service for each request,
/// one boxed clone per layer and level: measured with callgrind, over a tenth of a
/// `GET`'s instructions. Only [`note_route`], which needs the matched route, is
/// layered on the routes.
pub fn with_common_layers(routes: OpenApiRouter, readiness: Readiness, settings: &HttpSettings) -> Router {
    telemetry::prometheus();
    let operations = OpenApiRouter::new()
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::render))
        .with_state(readiness);
    let (router, mut api) = routes.merge(operations).split_for_parts();
    openapi::document_common_answers(&mut api);
    let router = router
        .merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, api).config(docs_page()))
        .fallback(|| async { ErrorResponse::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            ErrorResponse::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route")
        })
        .layer(axum::middleware::from_fn(note_route));
    let stack = ServiceBuilder::new()
        .layer(axum::middleware::from_fn(drop_unusable_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        // Every 5xx is logged where its cause is known (a storage failure, a timeout, a
        // dependency not ready); the layer's own line at ERROR would only repeat it, once
        // per failed request (measured: 2,980 extra lines while the database hung 30 s).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(axum::middleware::from_fn_with_state(settings.body_limit_bytes, limits::refuse_oversized_body))
        .option_layer(limits::cors(settings))
        .option_layer(
            limits::rate_limiter(settings)
                .map(|limiter| axum::middleware::from_fn_with_state(limiter, limits::rate_limit)),
        )
        .layer(axum::middleware::from_fn_with_state(settings.request_timeout(), limits::time_limit))
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        .service(router);
    Router::new().fallback_service(stack)
}

/// The route template a request matched, for the layers around the router (which see
/// the request before it is routed): recorded on the request's span as `route` and in
/// its OpenTelemetry name, and put in the response's extensions for the metrics.
///
/// A handler that panics is answered here too, 500 in the envelope, so that the answer
/// keeps its route in the metrics; the connection and the process go on, and the panic
/// is logged by `telemetry::log_panics`.
async fn note_route(request: Request<axum::body::Body>, next: axum::middleware::Next) -> axum::response::Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    if let Some(route) = &matched {
        name_span(&tracing::Span::current(), request.method(), route.as_str());
    }
    let mut response = AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| ErrorResponse::internal().into_response());
    if let Some(route) = matched {
        response.extensions_mut().insert(route);
    }
    response
}

/// Records the route template on a request's span (see [`request_span`]); nothing
/// when no subscriber takes the span (its name would be formatted for nobody: about
/// 1% of a `GET`'s instructions).
pub(crate) fn name_span(span: &tracing::Span, method: &axum::http::Method, route: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("route", route);
    span.record("otel.name", format!("{method} {route}"));
}

/// How the docs page behaves: requests can be tried from it, and nothing is fetched
/// from elsewhere (no online spec validator).
fn docs_page() -> utoipa_swagger_ui::Config<'static> {
    utoipa_swagger_ui::Config::default().validator_url("none").try_it_out_enabled(true).display_request_duration(true)
}

/// The span of one request: its request id and correlation id, its route once routed
/// ([`name_span`]), and, when the caller sent W3C trace headers, a child of the
/// caller's trace.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let headers = request.headers();
    let request_id = headers.get(&REQUEST_ID).and_then(usable_id).unwrap_or_default();
    let correlation_id = headers.get(&CORRELATION_ID).and_then(usable_id).unwrap_or_else(|| request_id.clone());
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        route = tracing::field::Empty,
        uri = %request.uri(),
        request.id = %request_id,
        correlation.id = %correlation_id,
        otel.name = tracing::field::Empty,
        otel.kind = "server",
    );
    telemetry::set_parent(
        &span,
        telemetry::extract_trace_context(|name| headers.get(name).and_then(|v| v.to_str().ok())),
    );
    span
}

/// Removes a client's `x-request-id` that we would not record (see
/// [`crate::context::usable_id`]), so a fresh one is generated: the id echoed, logged
/// and stored with the events is then always the same.
async fn drop_unusable_request_id(
    mut request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let usable = request.headers().get(&REQUEST_ID).map(|v| crate::context::usable_id(v).is_some());
    if usable == Some(false) {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then
/// finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_connections(listener, app, limits, shutdown).await
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then,
/// within `grace` of it: stops accepting, finishes the requests in flight, stops the
/// tasks of `supervisor` (each finishes what it has in hand: the consumers commit
/// their offsets, the relay flushes) and returns. Whatever has not finished when the
/// grace is nearly over is given up, and named in a log line: the process is expected
/// to exit then (see [`shutdown_signal_within`]), and what was not flushed is redone
/// at the next start (uncommitted offsets are redelivered, the relay republishes from
/// its checkpoint).
pub async fn serve_supervised(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    supervisor: Supervisor,
    grace: Duration,
) -> std::io::Result<()> {
    let (signalled, signal) = tokio::sync::oneshot::channel::<Instant>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled.send(Instant::now());
    };
    let mut serving = std::pin::pin!(serve_connections(listener, app, limits, shutdown));
    let mut signal = signal;
    // Serving ends by itself only on an error; else the signal comes first, and the
    // requests in flight then have the grace to finish.
    let (served, signalled_at) = tokio::select! {
        served = &mut serving => (Some(served), signal.try_recv().unwrap_or_else(|_| Instant::now())),
        at = &mut signal => (None, at.unwrap_or_else(|_| Instant::now())),
    };
    // The process must be gone by the grace: stop waiting a little before it.
    let reserve = (grace / 5).min(Duration::from_secs(1));
    let deadline = signalled_at + grace.saturating_sub(reserve);
    let served = match served {
        Some(served) => served,
        None => tokio::time::timeout_at(deadline, serving).await.unwrap_or_else(|_| {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "requests still in flight when the shutdown grace ran out; closing their connections"
            );
            Ok(())
        }),
    };
    let unfinished = supervisor.stop(deadline).await;
    if unfinished.is_empty() {
        tracing::info!("stopped");
    } else {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            unfinished = unfinished.join(", "),
            "the shutdown grace ran out; exiting without waiting for these tasks (what they had not committed or flushed is redone at the next start)"
        );
    }
    served
}

/// Completes on Ctrl-C or SIGTERM, like [`shutdown_signal`], and then makes sure the
/// process exits within `grace`, whatever still runs or blocks (a Kafka client
/// waiting for a broker that is down, say): a watchdog thread exits the process then,
/// with status 0, logging that it did.
pub async fn shutdown_signal_within(grace: Duration) {
    shutdown_signal().await;
    let watchdog = std::thread::Builder::new().name("shutdown-watchdog".to_owned()).spawn(move || {
        std::thread::sleep(grace);
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "still running at the end of the shutdown grace; exiting now"
        );
        std::process::exit(0);
    });
    if let Err(error) = watchdog {
        tracing::warn!(%error, "cannot start the shutdown watchdog; shutdown is not bounded");
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::supervisor::Pipeline;

    /// Serves one route that answers after `delay`, supervised with `grace`, until
    /// `stop` is notified; returns its address and the serving task.
    /// A server whose `/slow` answers after `delay`, stopped by `stop` with `grace`;
    /// also what the handler notifies as it starts, so a test signals only once its
    /// request is in flight (a fixed sleep lost that race on a loaded machine).
    async fn slow_server(
        delay: Duration,
        grace: Duration,
        stop: Arc<tokio::sync::Notify>,
    ) -> (String, tokio::task::JoinHandle<std::io::Result<()>>, Arc<tokio::sync::Notify>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = format!("http://{}", listener.local_addr().expect("its address"));
        let started = Arc::new(tokio::sync::Notify::new());
        let handler_started = started.clone();
        let app = Router::new().route(
            "/slow",
            axum::routing::get(move || async move {
                handler_started.notify_one();
                tokio::time::sleep(delay).await;
                "done"
            }),
        );
        let supervisor = Supervisor::new(&Pipeline::new());
        let shutdown = async move { stop.notified().await };
        let limits = ConnectionLimits::default();
        (address, tokio::spawn(serve_supervised(listener, app, limits, shutdown, supervisor, grace)), started)
    }

    #[tokio::test]
    async fn a_request_in_flight_at_the_signal_finishes_within_the_grace() {
        let stop = Arc::new(tokio::sync::Notify::new());
        let (address, serving, started) =
            slow_server(Duration::from_millis(500), Duration::from_secs(5), stop.clone()).await;
        let request = tokio::spawn(async move { reqwest::get(format!("{address}/slow")).await });
        started.notified().await;
        let signalled = Instant::now();
        stop.notify_one();
        let answer = request.await.expect("the request task").expect("an answer, not a closed connection");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.text().await.expect("its body"), "done");
        serving.await.expect("the server task").expect("served");
        let took = signalled.elapsed();
        assert!(took < Duration::from_secs(3), "stopped {took:?} after the signal, once the request was answered");
    }

    #[tokio::test]
    async fn a_request_longer_than_the_grace_is_cut_off_at_its_end() {
        let stop = Arc::new(tokio::sync::Notify::new());
        let (address, serving, started) =
            slow_server(Duration::from_secs(30), Duration::from_millis(800), stop.clone()).await;
        let request = tokio::spawn(async move { reqwest::get(format!("{address}/slow")).await });
        started.notified().await;
        let signalled = Instant::now();
        stop.notify_one();
        serving.await.expect("the server task").expect("served");
        let took = signalled.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(2),
            "stopped {took:?} after the signal: at the grace (800 ms, less its reserve), not at once nor at the request's end"
        );
        request.abort();
    }
}
