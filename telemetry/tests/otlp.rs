//! Trace export over OTLP/HTTP, against a collector stand-in that records what it
//! receives, and against no collector at all.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use opentelemetry::trace::{Tracer, TracerProvider};

type Received = Arc<Mutex<Vec<(String, String, Bytes)>>>;

/// An HTTP server on a free port that records every request: path, content type, body.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new().fallback(post({
        let received = received.clone();
        move |uri: Uri, headers: HeaderMap, body: Bytes| async move {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            received.lock().expect("lock").push((uri.path().to_owned(), content_type, body));
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_at_v1_traces_with_the_service_name() {
    let (endpoint, received) = collector().await;
    let provider =
        telemetry::tracing_setup::tracer_provider(&format!("{endpoint}/"), "oms-under-test").expect("provider");
    provider.tracer("test").in_span("place-order", |_| {});
    tokio::task::spawn_blocking(move || provider.shutdown()).await.expect("join").expect("flushed and shut down");

    let received = received.lock().expect("lock");
    let (path, content_type, body) = received.first().expect("the collector received an export request");
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/x-protobuf");
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"oms-under-test"), "the resource names the service");
    assert!(contains(b"place-order"), "the span is in the export");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_neither_fails_set_up_nor_blocks_shutdown() {
    let provider = telemetry::tracing_setup::tracer_provider("http://127.0.0.1:1", "oms-under-test")
        .expect("configuring needs no collector");
    provider.tracer("test").in_span("lost", |_| {});
    let started = Instant::now();
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await.expect("join");
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown gave up in {:?}", started.elapsed());
}

/// The only test here that installs the global subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_endpoint_configured_tracing_spans_are_exported_and_flushed_on_drop() {
    let (endpoint, received) = collector().await;
    let settings = telemetry::TelemetrySettings {
        otlp_endpoint: Some(endpoint),
        ..telemetry::TelemetrySettings::logs_only("info", telemetry::LogFormat::Json)
    };
    let guard = telemetry::init(&settings, "inventory-under-test").expect("set up");
    assert!(guard.exports_traces());
    tracing::info_span!("reserve-stock", order.id = "o-1").in_scope(|| tracing::info!("reserving"));
    tokio::task::spawn_blocking(move || drop(guard)).await.expect("flushed");

    let received = received.lock().expect("lock");
    let bodies: Vec<&Bytes> =
        received.iter().filter(|(path, _, _)| path == "/v1/traces").map(|(_, _, body)| body).collect();
    let contains = |needle: &[u8]| bodies.iter().any(|body| body.windows(needle.len()).any(|w| w == needle));
    assert!(contains(b"reserve-stock"), "the span reached the collector");
    assert!(contains(b"inventory-under-test"), "named after the service");
}
