//! Test support (feature `test-support`): traces recorded in memory, so tests of trace
//! propagation can read the trace ids of their spans.

use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;

/// Runs `f` with a subscriber that records traces (exported nowhere) as the default.
pub fn with_tracing<T>(f: impl FnOnce() -> T) -> T {
    let provider = SdkTracerProvider::builder().build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, f)
}
