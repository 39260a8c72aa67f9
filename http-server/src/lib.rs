//! HTTP plumbing shared by the OMS and the inventory service, so both speak the same
//! contract (`../shared/DESIGN.md`): every body is the `{success, data, error}`
//! envelope, framework rejections included, and a client's mistake is never a 5xx.
//!
//! # Layout
//! - [`envelope`]: the response envelope and [`ErrorResponse`], the one way errors
//!   leave a service.
//! - [`extract`]: JSON body, query and path extractors that reject in the envelope.
//! - [`context`]: request and correlation ids.
//! - [`settings`]: database and logging settings both binaries take.
//! - [`server`]: the middleware stack, fallbacks, health probes, serving and
//!   graceful shutdown, and logging set-up.
//!
//! Knows nothing of orders or products; must not depend on `rdkafka`.

pub mod context;
pub mod envelope;
pub mod extract;
pub mod server;
pub mod settings;

pub use context::RequestContext;
pub use envelope::{ApiResponse, ErrorResponse};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use server::{HttpSettings, LogFormat, init_logging, serve, shutdown_signal, with_common_layers};
pub use settings::{DatabaseSettings, DatabaseUrl, LogSettings};
