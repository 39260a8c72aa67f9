//! Logs and traces: `tracing` events as text or JSON lines, and, when an OTLP
//! endpoint is configured, spans exported to an OpenTelemetry collector.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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

/// Log and trace settings.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetrySettings {
    /// Log filter: a level (`info`) or per-target directives (`info,sqlx=warn`).
    #[arg(long = "log-level", env = "LOG_LEVEL", default_value = "info")]
    pub level: String,
    /// Log line format.
    #[arg(long = "log-format", env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub format: LogFormat,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver, e.g.
    /// `http://otel-collector:4318`; spans go to `<url>/v1/traces`. No traces are
    /// exported when unset.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` traces carry; the binary's name when unset.
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
}

impl TelemetrySettings {
    /// Plain logs at `level` in `format`, no trace export: what tests use.
    pub fn logs_only(level: &str, format: LogFormat) -> Self {
        Self { level: level.to_owned(), format, otlp_endpoint: None, service_name: None }
    }
}

/// What [`init`] set up; dropping it flushes the spans not yet exported.
#[must_use = "dropping it at once would stop trace export"]
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("flushing traces at shutdown: {error}");
        }
    }
}

/// Sets up logging and, with an OTLP endpoint, trace export, once per process (a
/// later call in the same process sets up nothing and exports nothing).
///
/// The exporter connects only when it has spans to send: an unreachable collector
/// never fails start-up; spans it cannot take are dropped and counted by the SDK.
pub fn init(settings: &TelemetrySettings, default_service_name: &str) -> anyhow::Result<Telemetry> {
    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let service = settings.service_name.as_deref().unwrap_or(default_service_name);
            Some(tracer_provider(endpoint, service)?)
        }
        None => None,
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("order-processing"))
            .with_filter(filter(&settings.level))
    });
    let installed = tracing_subscriber::registry().with(log_layer(settings)).with(otel).try_init().is_ok();
    log_panics();
    match provider {
        Some(provider) if installed => Ok(Telemetry { provider: Some(provider) }),
        Some(provider) => {
            let _ = provider.shutdown();
            Ok(Telemetry { provider: None })
        }
        None => Ok(Telemetry { provider: None }),
    }
}

/// Plain logging with `filter` (an `EnvFilter` directive) in `format`, once per
/// process; no trace export.
pub fn init_logging(filter: &str, format: LogFormat) {
    let _ = tracing_subscriber::registry().with(log_layer(&TelemetrySettings::logs_only(filter, format))).try_init();
    log_panics();
}

/// Makes a panic a log line at ERROR, in the format of the others and inside the span
/// it happened in (a request's, with its ids), instead of the text the standard hook
/// writes to standard error beside the JSON lines. The services catch what panics (a
/// handler answers 500, a background task is restarted); this says where and why.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|panic| {
        let payload = panic.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(not a string)");
        let location = panic.location().map(ToString::to_string).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        tracing::error!(target: "panic", panic = message, %location, thread, "panicked");
    }));
}

fn filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

fn log_layer<S>(settings: &TelemetrySettings) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let layer = tracing_subscriber::fmt::layer();
    if json {
        layer.json().with_filter(filter(&settings.level)).boxed()
    } else {
        layer.with_filter(filter(&settings.level)).boxed()
    }
}

/// A tracer provider that batches spans to `<endpoint>/v1/traces` (OTLP over HTTP,
/// protobuf), as `service`.
pub fn tracer_provider(endpoint: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(&url)
        .with_timeout(Duration::from_secs(3))
        .build()
        .with_context(|| format!("configuring the OTLP exporter for {url}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
        .build())
}
