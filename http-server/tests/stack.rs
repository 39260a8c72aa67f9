//! The shared stack over real HTTP: a small router of test routes behind
//! `with_common_layers`, on port 0, with the settings each test needs.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::Path;
use clap::Parser;
use http_server::{ApiResponse, HttpSettings, Readiness};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `GET /items/{id}`: answers at once.
#[utoipa::path(get, path = "/items/{id}", responses((status = 200, description = "The id.")))]
async fn item(Path(id): Path<String>) -> ApiResponse<String> {
    ApiResponse::ok(id)
}

/// `GET /slow`: answers after 2 seconds.
#[utoipa::path(get, path = "/slow", responses((status = 200, description = "Late.")))]
async fn slow() -> ApiResponse<&'static str> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    ApiResponse::ok("late")
}

/// `GET /panics`: a handler with a bug.
#[utoipa::path(get, path = "/panics", responses((status = 200, description = "Never.")))]
async fn panics() -> ApiResponse<&'static str> {
    panic!("a bug in a handler")
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    http: HttpSettings,
}

/// The default settings, as the binaries parse them from no flags.
fn defaults() -> HttpSettings {
    Cli::try_parse_from(["test"]).expect("defaults parse").http
}

/// Serves the test routes with `settings` and `readiness`; the base URL.
async fn serve(settings: HttpSettings, readiness: Readiness) -> String {
    let routes = OpenApiRouter::new().routes(routes!(item)).routes(routes!(slow)).routes(routes!(panics));
    let app = http_server::with_common_layers(routes, readiness, &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(http_server::serve(listener, app, settings.connection_limits(), std::future::pending()));
    address
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.expect("body"))
}

/// Asserts a failure envelope with `status` whose message contains `fragment`.
#[track_caller]
fn assert_failure(answer: &(StatusCode, reqwest::header::HeaderMap, String), status: StatusCode, fragment: &str) {
    assert_eq!(answer.0, status, "body: {}", answer.2);
    let body: Value = serde_json::from_str(&answer.2).unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.2));
    assert_eq!((&body["success"], &body["data"]), (&json!(false), &Value::Null), "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains(fragment), "message {message:?} lacks {fragment:?}");
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_is_answered_503_in_the_envelope() {
    let address = serve(HttpSettings { request_timeout_ms: 200, ..defaults() }, Readiness::new()).await;
    let started = std::time::Instant::now();
    let answer = get(&format!("{address}/slow"), &[("x-request-id", "slow-1")]).await;
    assert_failure(&answer, StatusCode::SERVICE_UNAVAILABLE, "longer than 200 ms");
    assert_eq!(
        answer.1.get("retry-after").map(|v| v.to_str().unwrap_or_default()),
        Some("1"),
        "a 503 says when to try again"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at the timeout, not after the handler: {:?}",
        started.elapsed()
    );
    assert_eq!(
        answer.1.get("x-request-id").map(|v| v.to_str().unwrap_or_default()),
        Some("slow-1"),
        "the id is echoed on timeouts too"
    );
    let fast = get(&format!("{address}/items/a"), &[]).await;
    assert_eq!(fast.0, StatusCode::OK, "fast requests are unaffected");
}

#[tokio::test]
async fn a_handler_that_panics_is_answered_500_in_the_envelope_and_the_server_goes_on() {
    let address = serve(defaults(), Readiness::new()).await;
    let answer = get(&format!("{address}/panics"), &[("x-request-id", "panic-1")]).await;
    assert_failure(&answer, StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    assert_eq!(
        answer.1.get("x-request-id").map(|v| v.to_str().unwrap_or_default()),
        Some("panic-1"),
        "the id is echoed, so that the answer can be matched with the logged panic"
    );
    let after = get(&format!("{address}/items/a"), &[]).await;
    assert_eq!(after.0, StatusCode::OK, "the server goes on");
    let counted = scrape_line(&address, r#"http_requests_total{method="GET",route="/panics",status="500"}"#).await;
    assert!(counted.is_some_and(|n| n >= 1.0), "the 500 is counted: {counted:?}");
}

#[tokio::test]
async fn beyond_the_rate_limit_requests_are_answered_429_with_retry_after() {
    let settings =
        HttpSettings { rate_limit_per_second: NonZeroU32::new(1), rate_limit_burst: NonZeroU32::new(3), ..defaults() };
    let address = serve(settings, Readiness::new()).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&format!("{address}/items/a"), &[]).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|a| a.0.as_u16()).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429], "a burst of 3, then refused");
    assert_failure(&statuses[3], StatusCode::TOO_MANY_REQUESTS, "too many requests");
    let retry_after: u64 = statuses[3]
        .1
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry_after), "retry after {retry_after} s");
}

#[tokio::test]
async fn there_is_no_rate_limit_by_default() {
    let address = serve(defaults(), Readiness::new()).await;
    for i in 0..50 {
        assert_eq!(get(&format!("{address}/items/{i}"), &[]).await.0, StatusCode::OK, "request {i}");
    }
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let settings = HttpSettings { cors_allowed_origins: vec!["https://shop.example".to_owned()], ..defaults() };
    let address = serve(settings, Readiness::new()).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(Method::OPTIONS, format!("{address}/items/a"))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type,idempotency-key")
            .send()
    };
    let allowed = preflight("https://shop.example").await.expect("preflight");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let header =
        |r: &reqwest::Response, name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header(&allowed, "access-control-allow-origin").as_deref(), Some("https://shop.example"));
    let methods = header(&allowed, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("PUT"), "{methods}");
    let allowed_headers = header(&allowed, "access-control-allow-headers").unwrap_or_default();
    assert!(allowed_headers.contains("idempotency-key"), "{allowed_headers}");

    let refused = preflight("https://evil.example").await.expect("preflight");
    assert_eq!(header(&refused, "access-control-allow-origin"), None, "no grant for other origins");

    let simple =
        client.get(format!("{address}/items/a")).header("origin", "https://shop.example").send().await.expect("get");
    assert_eq!(header(&simple, "access-control-allow-origin").as_deref(), Some("https://shop.example"));
    assert_eq!(
        header(&simple, "access-control-expose-headers").as_deref(),
        Some("x-request-id"),
        "browsers may read the request id"
    );
}

#[tokio::test]
async fn without_allowed_origins_there_are_no_cors_headers() {
    let address = serve(defaults(), Readiness::new()).await;
    let answer = get(&format!("{address}/items/a"), &[("origin", "https://shop.example")]).await;
    assert_eq!(answer.0, StatusCode::OK);
    assert!(answer.1.get("access-control-allow-origin").is_none(), "{:?}", answer.1);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status_with_latency_buckets() {
    let address = serve(defaults(), Readiness::new()).await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    for _ in 0..2 {
        get(&format!("{address}/items/{marker}"), &[]).await;
    }
    get(&format!("{address}/no/such/{marker}"), &[]).await;
    let invented = Method::from_bytes(format!("M{}", &marker[..8].to_uppercase()).as_bytes()).expect("a method token");
    reqwest::Client::new().request(invented, format!("{address}/items/a")).send().await.expect("request");
    let (status, headers, text) = get(&format!("{address}/metrics"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain")),
        "{headers:?}"
    );
    assert!(!text.contains(&marker), "raw paths never become labels");
    let count = |route: &str, status: &str| -> f64 {
        let prefix = format!(r#"http_requests_total{{method="GET",route="{route}",status="{status}"}} "#);
        text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    assert!(count("/items/{id}", "200") >= 2.0, "{text}");
    assert!(count("unmatched", "404") >= 1.0, "{text}");
    assert!(
        text.contains(
            r#"http_request_duration_seconds_bucket{method="GET",route="/items/{id}",status="200",le="0.005"}"#
        ),
        "{text}"
    );
    assert!(text.contains("# HELP http_requests_total"), "described");
    assert!(
        text.contains(r#"http_requests_total{method="OTHER",route="/items/{id}",status="405"}"#),
        "invented methods share one label: {text}"
    );
}

#[tokio::test]
async fn readiness_names_what_is_down_and_liveness_does_not_care() {
    let readiness = Readiness::new()
        .check("broker", || async { Err("connection refused".to_owned()) })
        .check("cache", || async { Ok(()) });
    let address = serve(defaults(), readiness).await;
    let ready = get(&format!("{address}/health/ready"), &[]).await;
    assert_failure(&ready, StatusCode::SERVICE_UNAVAILABLE, "not ready: broker is down (cache is up)");
    assert!(!ready.2.contains("connection refused"), "causes are logged, not answered");
    let live = get(&format!("{address}/health/live"), &[]).await;
    assert_eq!(live.0, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&live.2).expect("JSON")["data"]["status"], "live");
}

#[tokio::test]
async fn a_hanging_check_counts_as_down() {
    let readiness = Readiness::new().check("broker", std::future::pending);
    let address = serve(defaults(), readiness).await;
    assert_failure(
        &get(&format!("{address}/health/ready"), &[]).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "broker is down",
    );
}

#[tokio::test]
async fn the_database_is_ready_only_with_every_migration_applied() {
    let url = migrations::testing::create_database().await.expect("test database");
    let pool = migrations::connect_and_migrate(&url, "oms", 2, &migrations::OMS).await.expect("migrated");
    let address = serve(defaults(), Readiness::new().database(pool.clone(), &migrations::OMS)).await;
    let ready = get(&format!("{address}/health/ready"), &[]).await;
    assert_eq!(ready.0, StatusCode::OK, "{}", ready.2);
    assert_eq!(
        serde_json::from_str::<Value>(&ready.2).expect("JSON")["data"],
        json!({"status": "ready", "checks": {"database": "up"}})
    );

    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
        .execute(&pool)
        .await
        .expect("forgetting the latest migration");
    assert_failure(
        &get(&format!("{address}/health/ready"), &[]).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "database is down",
    );
}

#[tokio::test]
async fn the_document_and_the_docs_page_are_served_without_internet() {
    let address = serve(defaults(), Readiness::new()).await;
    let (status, _, text) = get(&format!("{address}/openapi.json"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let document: Value = serde_json::from_str(&text).expect("JSON");
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", document["openapi"]);
    for path in ["/items/{id}", "/health/live", "/health/ready", "/metrics"] {
        assert!(document["paths"][path]["get"].is_object(), "{path} documented");
    }
    let operation = &document["paths"]["/items/{id}"]["get"];
    let parameters: Vec<&str> =
        operation["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    assert!(parameters.contains(&"x-request-id") && parameters.contains(&"x-correlation-id"), "{parameters:?}");
    assert!(operation["responses"]["200"]["headers"]["x-request-id"].is_object(), "answers document the echoed id");
    let timeout = &document["paths"]["/items/{id}"]["get"]["responses"]["503"];
    assert!(
        timeout["description"].as_str().is_some_and(|d| d.contains("HTTP_REQUEST_TIMEOUT_MS")),
        "shared answers are documented: {timeout}"
    );

    let (status, _, page) = get(&format!("{address}/docs/"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("swagger-ui"), "the Swagger UI page");
    assert!(!page.contains("https://"), "the page loads nothing from elsewhere");
    let (status, _, config) = get(&format!("{address}/docs/swagger-initializer.js"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(config.contains("/openapi.json"), "the page shows our document: {config}");
    assert!(config.contains(r#""validatorUrl": "none""#), "no online validator: {config}");
    let (status, _, script) = get(&format!("{address}/docs/swagger-ui-bundle.js"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.len() > 100_000, "the bundle is served from the binary ({} bytes)", script.len());
}

#[tokio::test]
async fn probes_and_metrics_are_never_rate_limited() {
    let settings =
        HttpSettings { rate_limit_per_second: NonZeroU32::new(1), rate_limit_burst: NonZeroU32::new(1), ..defaults() };
    let address = serve(settings, Readiness::new()).await;
    assert_eq!(get(&format!("{address}/items/a"), &[]).await.0, StatusCode::OK, "the one token");
    assert_eq!(get(&format!("{address}/items/a"), &[]).await.0, StatusCode::TOO_MANY_REQUESTS, "the bucket is empty");
    let emptied = std::time::Instant::now();
    for round in 0..3 {
        for path in ["/health/live", "/health/ready", "/metrics"] {
            let answer = get(&format!("{address}{path}"), &[]).await;
            assert_eq!(answer.0, StatusCode::OK, "{path}, round {round}, with the bucket empty: {}", answer.2);
        }
    }
    // The next token comes a second after the bucket emptied: before that, the probes
    // must have left it empty (they neither take nor give tokens).
    let after_probes = get(&format!("{address}/items/a"), &[]).await.0;
    if emptied.elapsed() < Duration::from_millis(900) {
        assert_eq!(after_probes, StatusCode::TOO_MANY_REQUESTS, "probes gave no token back");
    }
}

#[tokio::test]
async fn the_pipeline_is_down_while_a_task_is_restarting_naming_it() {
    let pipeline = http_server::Pipeline::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let supervised = pipeline.supervise("relay", &stop, {
        let (gate, stop) = (gate.clone(), stop.clone());
        move || {
            let (gate, stop) = (gate.clone(), stop.clone());
            // Runs until the gate opens, then fails: restarted after a backoff, and
            // from then on runs until shutdown.
            async move {
                tokio::select! {
                    () = gate.notified() => anyhow::bail!("the broker fenced the producer"),
                    () = stop.cancelled() => Ok(()),
                }
            }
        }
    });
    let readiness = Readiness::new().pipeline(pipeline.clone(), Duration::from_secs(60), || async { Ok(None) });
    let address = serve(defaults(), readiness).await;
    let ready = get(&format!("{address}/health/ready"), &[]).await;
    assert_eq!(ready.0, StatusCode::OK, "every task runs: {}", ready.2);
    assert!(scrape_line(&address, r#"pipeline_stalled{task="relay"}"#).await == Some(0.0));

    gate.notify_one();
    let started = std::time::Instant::now();
    let down = loop {
        let answer = get(&format!("{address}/health/ready"), &[]).await;
        if answer.0 != StatusCode::OK {
            break answer;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never reported down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_failure(
        &down,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready: pipeline is down; pipeline: relay failed: the broker fenced the producer; restarting",
    );
    assert_eq!(scrape_line(&address, r#"pipeline_stalled{task="relay"}"#).await, Some(1.0));

    // Restarted after its backoff: ready again, the gauge back to 0.
    loop {
        if get(&format!("{address}/health/ready"), &[]).await.0 == StatusCode::OK {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(scrape_line(&address, r#"pipeline_stalled{task="relay"}"#).await, Some(0.0));
    stop.cancel();
    supervised.await.expect("stops");
}

#[tokio::test]
async fn the_pipeline_is_down_while_the_oldest_unpublished_event_is_older_than_the_bound() {
    let age = std::sync::Arc::new(std::sync::Mutex::new(Some(Duration::from_secs(5))));
    let readiness = Readiness::new().check("database", || async { Ok(()) }).pipeline(
        http_server::Pipeline::new(),
        Duration::from_secs(60),
        {
            let age = age.clone();
            move || {
                let age = *age.lock().expect("lock");
                async move { Ok(age) }
            }
        },
    );
    let address = serve(defaults(), readiness).await;
    assert_eq!(get(&format!("{address}/health/ready"), &[]).await.0, StatusCode::OK, "5 s behind is within the bound");
    *age.lock().expect("lock") = Some(Duration::from_secs(75));
    assert_failure(
        &get(&format!("{address}/health/ready"), &[]).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready: pipeline is down (database is up); pipeline: the oldest unpublished event was committed 75 s ago (bound 60 s)",
    );
    *age.lock().expect("lock") = None;
    assert_eq!(get(&format!("{address}/health/ready"), &[]).await.0, StatusCode::OK, "nothing waits");
}

/// The value of the metric line starting with `series` on `/metrics`.
async fn scrape_line(address: &str, series: &str) -> Option<f64> {
    let text = get(&format!("{address}/metrics"), &[]).await.2;
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn a_client_that_sends_a_whole_oversized_body_reads_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = serve(defaults(), Readiness::new()).await;
    let host = address.trim_start_matches("http://").to_owned();
    let body = vec![b' '; 5 * 1024 * 1024];
    for attempt in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&host).await.expect("connect");
        let head = format!(
            "POST /items HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("writing the head");
        // The whole body first, as urllib and requests do: the server must read it,
        // not close the connection under the client's feet.
        stream.write_all(&body).await.unwrap_or_else(|e| panic!("attempt {attempt}: writing the whole body: {e}"));
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        let complete = loop {
            let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
                .await
                .expect("an answer")
                .expect("reading the answer");
            answer.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&answer).into_owned();
            if read == 0 || text.contains("\"success\":false") && text.ends_with('}') {
                break text;
            }
        };
        assert!(complete.starts_with("HTTP/1.1 413"), "attempt {attempt}: {complete}");
        let body = complete.split("\r\n\r\n").nth(1).unwrap_or_default();
        let envelope: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {complete}"));
        assert_eq!((&envelope["success"], &envelope["data"]), (&json!(false), &Value::Null));
        assert!(envelope["error"].as_str().unwrap_or_default().contains("too large"), "{envelope}");
    }
}

/// A connection whose request head is still incomplete when the header read timeout
/// runs out is closed (slow clients cannot hold connections for ever), and the
/// server goes on serving others.
#[tokio::test]
async fn a_request_head_sent_too_slowly_has_its_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = serve(HttpSettings { header_read_timeout_ms: 300, ..defaults() }, Readiness::new()).await;
    let mut slow = tokio::net::TcpStream::connect(address.trim_start_matches("http://")).await.expect("a connection");
    slow.write_all(b"GET /items/1 HTTP/1.1\r\nHost: x\r\n").await.expect("half a request head");
    let started = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was not closed within 5 s");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "closed after {waited:?}, before the timeout");
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "no answer to half a head: {answer:?}");
    let (status, _, _) = get(&format!("{address}/items/1"), &[]).await;
    assert_eq!(status, StatusCode::OK, "others are served");
}

/// At most `HTTP_MAX_CONNECTIONS` connections are served at once: the next one waits
/// until one of them ends, and is served then.
#[tokio::test]
async fn connections_beyond_the_maximum_wait_until_one_ends() {
    use tokio::io::AsyncWriteExt;
    let address = serve(HttpSettings { max_connections: 2, ..defaults() }, Readiness::new()).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut connection =
            tokio::net::TcpStream::connect(address.trim_start_matches("http://")).await.expect("a connection");
        connection.write_all(b"GET /items/1 HTTP/1.1\r\n").await.expect("the start of a request");
        held.push(connection);
    }
    let waiting = tokio::spawn({
        let url = format!("{address}/items/1");
        async move { get(&url, &[]).await.0 }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection was served while two were held");
    drop(held.pop());
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served within 5 s of a connection ending")
        .expect("the request task");
    assert_eq!(status, StatusCode::OK);
}
