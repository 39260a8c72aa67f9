//! Serving: the middleware stack, envelope fallbacks, health probes, graceful
//! shutdown, and logging set-up.

use std::io::IsTerminal;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

use crate::{ApiResponse, ErrorResponse};

/// The header carrying a request's id, generated when the client sends none.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// HTTP settings both services share.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "HTTP_BODY_LIMIT_BYTES", default_value_t = 64 * 1024)]
    pub body_limit_bytes: usize,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when standard output is not a terminal, else human-readable text.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Sets up `tracing` once per process; `filter` is an `EnvFilter` directive such as
/// `info` or `oms=debug,sqlx=warn`.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Wraps a service's routes with what every route needs: envelope fallbacks for
/// unknown routes and methods, health probes, a body limit, request ids and
/// request tracing.
pub fn with_common_layers(routes: Router, pool: PgPool, settings: &HttpSettings) -> Router {
    routes
        .route("/health/live", get(live))
        .route("/health/ready", get(ready).with_state(pool))
        .fallback(|| async { ErrorResponse::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async { ErrorResponse::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route") })
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                tracing::info_span!("http", method = %request.method(), uri = %request.uri(), request.id = %request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(axum::middleware::from_fn(drop_unusable_request_id))
}

/// Removes a client's `x-request-id` that we would not record (see
/// [`crate::context::usable_id`]), so a fresh one is generated: the id echoed, logged
/// and stored with the events is then always the same.
async fn drop_unusable_request_id(mut request: Request<axum::body::Body>, next: axum::middleware::Next) -> axum::response::Response {
    let usable = request.headers().get(&REQUEST_ID).map(|v| crate::context::usable_id(v).is_some());
    if usable == Some(false) {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}

#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
}

async fn live() -> ApiResponse<Health> {
    ApiResponse::ok(Health { status: "live", database: "not checked" })
}

async fn ready(State(pool): State<PgPool>) -> Result<ApiResponse<Health>, ErrorResponse> {
    match tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&pool)).await {
        Ok(Ok(_)) => Ok(ApiResponse::ok(Health { status: "ready", database: "up" })),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database unreachable");
            Err(ErrorResponse::unavailable("the database"))
        }
        Err(_) => Err(ErrorResponse::unavailable("the database")),
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes requests in
/// flight.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
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
