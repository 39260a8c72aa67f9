//! A request that carries a W3C `traceparent` is served inside the caller's trace.
//! Its own test binary: it installs the process's global subscriber.

use clap::Parser;
use http_server::{ApiResponse, HttpSettings, Readiness};
use opentelemetry::trace::TracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `GET /trace`: the trace context the handler runs in, as it would send it on.
#[utoipa::path(get, path = "/trace", responses((status = 200, description = "The traceparent.")))]
async fn trace() -> ApiResponse<String> {
    let mut traceparent = String::new();
    telemetry::inject_trace_context(|name, value| {
        if name == "traceparent" {
            traceparent = value;
        }
    });
    ApiResponse::ok(traceparent)
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    http: HttpSettings,
}

#[tokio::test]
async fn a_request_with_a_traceparent_is_served_in_the_callers_trace() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))).init();

    let settings = Cli::try_parse_from(["test"]).expect("defaults").http;
    let app = http_server::with_common_layers(OpenApiRouter::new().routes(routes!(trace)), Readiness::new(), &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(http_server::serve(listener, app, settings.connection_limits(), std::future::pending()));
    let traceparent_in = |headers: &[(&str, &str)]| {
        let mut request = reqwest::Client::new().get(format!("{address}/trace"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move {
            let body: serde_json::Value = request.send().await.expect("request").json().await.expect("JSON");
            body["data"].as_str().expect("a traceparent").to_owned()
        }
    };

    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let inside = traceparent_in(&[("traceparent", caller)]).await;
    assert!(inside.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "the caller's trace: {inside}");
    assert!(!inside.contains("00f067aa0ba902b7"), "in a span of its own, a child of the caller's: {inside}");

    let fresh = traceparent_in(&[]).await;
    assert_eq!(fresh.len(), caller.len(), "a request without one starts a trace: {fresh}");
    assert!(!fresh.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
}
