//! HTTP plumbing shared by the OMS and the inventory service, so both speak the same
//! contract (`../shared/DESIGN.md`): every body is the `{success, data, error}`
//! envelope, framework rejections included, and a client's mistake is never a 5xx.
//!
//! # Layout
//! - [`envelope`]: the response envelope and [`ErrorResponse`], the one way errors
//!   leave a service.
//! - [`extract`]: JSON body, query and path extractors that reject in the envelope.
//! - [`headers`]: `If-Match` and `Idempotency-Key`, enforced and documented alike.
//! - [`as_of`]: the `asOf` parameter, enforced and documented alike.
//! - [`context`]: request and correlation ids.
//! - [`settings`]: database, HTTP and telemetry settings both binaries take.
//! - [`server`]: the middleware stack, fallbacks, the operations routes, serving and
//!   graceful shutdown.
//! - [`connections`]: accepting connections, at most so many at once, each given a
//!   bounded time to send a request head.
//! - [`health`]: `/health/live` and `/health/ready`, with the checks a service
//!   passes in.
//! - [`metrics`]: HTTP metrics and `/metrics`.
//! - [`limits`]: request timeout, rate limit (never on the probes), CORS.
//! - [`supervisor`]: background tasks restarted when they end or panic, their
//!   states for readiness, and stopping them within the shutdown grace.
//! - [`openapi`]: the envelope schemas and the answers every route documents.
//! - `openapi_checks` (feature `test-support`): checks of a served document, for
//!   the services' tests.
//! - `detached` (feature `test-support`): a service under test on a runtime of its
//!   own, so that the test's end does not wait for its blocking tasks.
//!
//! Knows nothing of orders or products; must not depend on `rdkafka`.

pub mod as_of;
pub mod connections;
pub mod context;
#[cfg(feature = "test-support")]
pub mod detached;
pub mod envelope;
pub mod extract;
pub mod headers;
pub mod health;
pub mod history;
pub mod limits;
pub mod metrics;
pub mod openapi;
#[cfg(feature = "test-support")]
pub mod openapi_checks;
pub mod server;
pub mod settings;
pub mod supervisor;

pub use connections::ConnectionLimits;
pub use context::RequestContext;
pub use envelope::{ApiResponse, ErrorResponse};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use headers::{IfMatch, idempotency_key};
pub use health::Readiness;
pub use openapi::{Failure, Page, Success};
pub use server::{
    DOCS_PATH, OPENAPI_PATH, serve, serve_supervised, shutdown_signal, shutdown_signal_within, with_common_layers,
};
pub use settings::{
    DatabaseSessionSettings, DatabaseSettings, DatabaseUrl, HttpSettings, LifecycleSettings, LogFormat,
    TelemetrySettings,
};
pub use supervisor::{Pipeline, Supervisor};
pub use telemetry::init_logging;
