//! Log lines written while serving a request carry its request id and correlation
//! id, as JSON fields of the request's span. Its own test binary: it installs the
//! process's global subscriber.

use clap::Parser;
use http_server::{ApiResponse, HttpSettings, Readiness};
use serde_json::Value;
use telemetry::testing::Written;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `GET /work`: logs one line.
#[utoipa::path(get, path = "/work", responses((status = 200, description = "Done.")))]
async fn work() -> ApiResponse<&'static str> {
    tracing::info!(step = "work", "handling the request");
    ApiResponse::ok("done")
}

/// `GET /panics`: a handler with a bug.
#[utoipa::path(get, path = "/panics", responses((status = 200, description = "Never.")))]
async fn panics() -> ApiResponse<&'static str> {
    panic!("a bug in a handler")
}

/// The first JSON line written that `wanted` picks.
fn find(written: &Written, wanted: impl Fn(&Value) -> bool) -> Value {
    let text = written.text();
    let found = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|l| wanted(l));
    found.unwrap_or_else(|| panic!("no such JSON line among: {text}"))
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    http: HttpSettings,
}

#[tokio::test]
async fn log_lines_of_a_request_carry_its_request_and_correlation_ids_as_json() {
    let lines = Written::default();
    let writer = lines.clone();
    tracing_subscriber::fmt().json().with_writer(move || writer.clone()).with_env_filter("info").init();
    telemetry::log_panics();

    let settings = Cli::try_parse_from(["test"]).expect("defaults").http;
    let app = http_server::with_common_layers(
        OpenApiRouter::new().routes(routes!(work)).routes(routes!(panics)),
        Readiness::new(),
        &settings,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(http_server::serve(listener, app, http_server::ConnectionLimits::default(), std::future::pending()));

    let response = reqwest::Client::new()
        .get(format!("{address}/work"))
        .header("x-request-id", "req-log-1")
        .header("x-correlation-id", "checkout-7")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    let line = find(&lines, |l| l["fields"]["step"] == "work");
    let span = &line["span"];
    assert_eq!(span["name"], "http");
    assert_eq!(span["request.id"], "req-log-1");
    assert_eq!(span["correlation.id"], "checkout-7");
    assert_eq!(span["route"], "/work", "the route template, not the raw path");

    // A panic is a JSON line at ERROR in the request's span, with where it happened.
    let response = reqwest::Client::new()
        .get(format!("{address}/panics"))
        .header("x-request-id", "req-panic-1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 500);
    let line = find(&lines, |l| l["fields"]["panic"] == "a bug in a handler");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["span"]["request.id"], "req-panic-1");
    assert!(line["fields"]["location"].as_str().is_some_and(|l| l.contains("logs.rs")), "{line}");
}
