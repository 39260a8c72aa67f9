//! What the API suites of both services need (feature `test-support`): a service under
//! test on a database of its own and a free port, and requests with the envelope
//! checks of DESIGN.md.

use std::sync::Once;

use clap::Parser;
use http_server::detached::DetachedService;
use http_server::{DatabaseSettings, LogFormat, TelemetrySettings};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{Application, Cli, Named, Operated, ServeSettings};

/// The body limit a service under test runs with.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

static LOGGING: Once = Once::new();

/// A service listening on a free port, with a database of its own.
pub struct TestService {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The client every request goes through.
    pub client: reqwest::Client,
    /// The service's database, search path its schema, to look behind the API.
    pub pool: PgPool,
    /// The service's database URL, for the operator commands.
    pub database_url: String,
    /// The service, asked to stop when the test drops this.
    _service: DetachedService,
}

/// Starts service `A` (named `I`) on a fresh database, with `configure` applied to the
/// test settings first. Logs only with `TEST_LOG=1`.
///
/// The settings start from the command line's defaults, so settings added later need
/// no change here; every setting the API suites depend on is then pinned (flags and
/// environment aside). The broker is a port nothing listens on: the API suites check
/// the HTTP contract, which must hold without one, and it keeps every test's relay and
/// consumer away from any broker other tests share (a saga there would answer their
/// orders). The end-to-end tests use Kafka.
pub async fn spawn<A, I>(configure: impl FnOnce(&mut A::Settings)) -> TestService
where
    A: Application,
    I: Named + Operated,
{
    LOGGING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
            http_server::init_logging("debug", LogFormat::Text);
        }
    });
    let identity = I::IDENTITY;
    let database_url = migrations::testing::create_database().await.expect("creating a test database");
    let mut settings =
        Cli::<A::Settings, I>::try_parse_from([identity.binary]).expect("the default settings parse").serve;
    let service = settings.service();
    service.host = "127.0.0.1".to_owned();
    service.port = 0;
    service.database_schema = identity.schema.to_owned();
    service.database = DatabaseSettings {
        url: database_url.parse().expect("the test database URL is a postgres:// URL"),
        max_connections: 10,
    };
    service.http.body_limit_bytes = BODY_LIMIT_BYTES;
    service.telemetry = TelemetrySettings::logs_only("debug", LogFormat::Text);
    service.kafka.brokers = "127.0.0.1:1".to_owned();
    service.consumer_group = format!("{}-api-test-{}", identity.binary, uuid::Uuid::new_v4().simple());
    configure(&mut settings);
    let schema = settings.service().database_schema.clone();
    let (started, port) = tokio::sync::oneshot::channel();
    let service = http_server::detached::run_detached(move |shutdown| async move {
        let app = A::build(&settings).await.expect("building the application");
        let _ = started.send(app.port());
        let _ = app.run_until(shutdown).await;
    });
    let address = format!("http://127.0.0.1:{}", port.await.expect("the application started"));
    let pool = migrations::connect_and_migrate(&database_url, &schema, 2, I::migrations())
        .await
        .expect("connecting the test pool");
    TestService { address, client: reqwest::Client::new(), pool, database_url, _service: service }
}

/// Declares a suite's handle on its service under test: a newtype over [`TestService`]
/// that derefs to it, to which the suite adds the requests of its own API as methods.
/// Build it from [`spawn`]'s service: `TestApp(spawn::<Application, Oms>(…).await)`.
#[macro_export]
macro_rules! test_app {
    ($(#[$attribute:meta])* $visibility:vis struct $name:ident;) => {
        $(#[$attribute])*
        $visibility struct $name($crate::testing::TestService);

        impl ::std::ops::Deref for $name {
            type Target = $crate::testing::TestService;

            fn deref(&self) -> &$crate::testing::TestService {
                &self.0
            }
        }
    };
}

/// A request body as a test sends it.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body and no `Content-Type`.
    None,
    /// A JSON document, sent as `application/json`.
    Json(Value),
    /// Raw text with the given `Content-Type`.
    Raw(&'static str, String),
    /// Raw text without a `Content-Type` (pass one in the headers, or none).
    Text(String),
}

/// An answer: status, headers and the JSON body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, parsed as JSON (every answer of ours is JSON).
    pub body: Value,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("reading the response body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: the body is not JSON ({e}): {text:?}"));
        Self { status, headers, body }
    }

    /// Asserts a success envelope with `status`, `data` set and `error` null; returns `data`.
    #[track_caller]
    pub fn data(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["success"], json!(true), "success flag; body: {}", self.body);
        assert_eq!(self.body["error"], Value::Null, "error must be null on success; body: {}", self.body);
        assert_eq!(object_keys(&self.body), ["data", "error", "success"], "envelope keys; body: {}", self.body);
        &self.body["data"]
    }

    /// Asserts a failure envelope with `status`, `data` null and a non-empty `error`
    /// message; returns the message. `label` names the case in every assertion.
    #[track_caller]
    pub fn error(&self, status: StatusCode, label: &str) -> &str {
        assert_eq!(self.status, status, "[{label}] unexpected status; body: {}", self.body);
        assert_eq!(self.body["success"], json!(false), "[{label}] success flag; body: {}", self.body);
        assert_eq!(self.body["data"], Value::Null, "[{label}] data must be null on failure; body: {}", self.body);
        assert_eq!(
            object_keys(&self.body),
            ["data", "error", "success"],
            "[{label}] envelope keys; body: {}",
            self.body
        );
        let message =
            self.body["error"].as_str().unwrap_or_else(|| panic!("[{label}] error is not a string: {}", self.body));
        assert!(!message.trim().is_empty(), "[{label}] the error message is empty");
        message
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The request example `document` shows for operation `method path` (`null` when none).
pub fn request_example(document: &Value, method: &str, path: &str) -> Value {
    document["paths"][path][method]["requestBody"]["content"]["application/json"]["example"].clone()
}

/// The value of the first sample line of Prometheus text `metrics` that starts with
/// `series` (0 when there is none).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// Asserts that an event of an `/events` history carries the audit fields of DESIGN.md
/// (sequence, type, version, id, time, correlation and causation, payload), its id a
/// UUID.
#[track_caller]
pub fn assert_audit_fields(event: &Value) {
    let keys = object_keys(event);
    for key in
        ["sequence", "eventType", "eventVersion", "eventId", "occurredAt", "correlationId", "causationId", "payload"]
    {
        assert!(keys.contains(&key), "every event has {key}: {event}");
    }
    let event_id = event["eventId"].as_str().expect("eventId is a string");
    assert!(uuid::Uuid::parse_str(event_id).is_ok(), "eventId {event_id} is a UUID");
}

/// The sorted keys of a JSON object (empty for anything else).
pub fn object_keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    keys
}

impl TestService {
    /// Sends any request; `path` starts with `/`.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Body) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(content_type, text) => request.header("content-type", content_type).body(text),
            Body::Text(text) => request.body(text),
        };
        Answer::read(request.send().await.expect("sending the request")).await
    }

    /// Rows in the event store, all aggregates.
    pub async fn count_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&self.pool).await.expect("counting events")
    }
}

/// Checks the `--help` of service `I` with `serve` settings `S`, whose binary is at
/// `binary`: every argument has help; the shared variables, the service's prefixed ones
/// and `own` are named; secrets set in the environment are never printed, ordinary
/// settings show their value.
pub fn assert_help_documents_settings<S: clap::Args, I: Named>(binary: &str, own: &[&str]) {
    use clap::CommandFactory;
    let identity = I::IDENTITY;
    let mut command = Cli::<S, I>::command();
    let help = command.render_long_help().to_string();
    let prefixed: Vec<String> = ["HOST", "PORT", "DATABASE_SCHEMA", "CONSUMER_GROUP"]
        .iter()
        .map(|name| format!("{}_{name}", identity.env_prefix))
        .collect();
    let shared = [
        "DATABASE_URL",
        "DATABASE_MAX_CONNECTIONS",
        "HTTP_BODY_LIMIT_BYTES",
        "HTTP_REQUEST_TIMEOUT_MS",
        "HTTP_CORS_ALLOWED_ORIGINS",
        "HTTP_RATE_LIMIT_PER_SECOND",
        "HTTP_RATE_LIMIT_BURST",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "KAFKA_BROKERS",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CERTIFICATE_LOCATION",
        "KAFKA_SSL_KEY_LOCATION",
        "KAFKA_SSL_KEY_PASSWORD",
    ];
    for variable in shared.iter().copied().chain(prefixed.iter().map(String::as_str)).chain(own.iter().copied()) {
        assert!(help.contains(&format!("[env: {variable}")), "--help names {variable}:\n{help}");
    }
    for argument in command.get_arguments() {
        let documented = argument.get_help().is_some() || argument.get_long_help().is_some();
        assert!(documented, "--{} has no help text", argument.get_id());
    }
    let output = std::process::Command::new(binary)
        .arg("--help")
        .env("DATABASE_URL", "postgres://app:hunter2@db/orders")
        .env("KAFKA_SASL_PASSWORD", "hunter3")
        .env("KAFKA_PRODUCER_SSL_KEY_PASSWORD", "hunter4")
        .env("KAFKA_SSL_KEY_PASSWORD", "hunter5")
        .env("DATABASE_STATEMENT_TIMEOUT_MS", "12345")
        .output()
        .unwrap_or_else(|e| panic!("running {binary} --help: {e}"));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && printed.contains("--otlp-endpoint"), "{printed}");
    assert!(
        !["hunter2", "hunter3", "hunter4", "hunter5"].iter().any(|secret| printed.contains(secret)),
        "secrets set in the environment are not printed"
    );
    assert!(printed.contains("12345"), "ordinary settings show their environment value: {printed}");
    let secret_args: Vec<_> = command
        .get_arguments()
        .filter(|a| ["url", "sasl_password", "ssl_key_password"].contains(&a.get_id().as_str()))
        .collect();
    assert_eq!(secret_args.len(), 3);
    for argument in secret_args {
        assert!(argument.is_hide_env_values_set(), "--{} hides its environment value", argument.get_id());
    }
}

impl TestService {
    /// The service's API document, `GET /openapi.json`.
    pub async fn openapi(&self) -> Value {
        let response =
            self.client.get(format!("{}/openapi.json", self.address)).send().await.expect("GET /openapi.json");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("the document is JSON")
    }

    /// Checks that the API document is OpenAPI 3.1 and lists exactly the service's
    /// `operations` (`(method, path template)`) and those every service serves (the
    /// health probes and `/metrics`), and that each is served: asked with the path
    /// parameter `parameter.0` replaced by `parameter.1`, none answers "no such route"
    /// or 405.
    pub async fn assert_documents_exactly(&self, operations: &[(&str, &str)], parameter: (&str, &str)) {
        const EVERY_SERVICE: [(&str, &str); 3] =
            [("get", "/health/live"), ("get", "/health/ready"), ("get", "/metrics")];
        use http_server::openapi_checks::documented;
        let document = self.openapi().await;
        assert!(
            document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")),
            "OpenAPI 3.1: {}",
            document["openapi"]
        );
        let mut expected: Vec<(String, String)> =
            operations.iter().chain(&EVERY_SERVICE).map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        expected.sort();
        assert_eq!(documented(&document), expected);
        for (method, path) in documented(&document) {
            let concrete = path.replace(parameter.0, parameter.1);
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = self
                .client
                .request(method.clone(), format!("{}{concrete}", self.address))
                .send()
                .await
                .expect("request");
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            assert!(
                !text.contains("no such route") && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not served: {status} {text}"
            );
        }
    }
}

impl TestService {
    /// Asserts that the document's examples all fit their schemas, that there are at
    /// least `at_least` of them, and that operation `method path` shows one for each of
    /// `statuses`.
    pub async fn assert_examples_fit(&self, at_least: usize, (method, path): (&str, &str), statuses: &[&str]) {
        let document = self.openapi().await;
        let checked = http_server::openapi_checks::check_every_example(&document);
        assert!(checked >= at_least, "only {checked} examples: most answers should show one");
        let responses = &document["paths"][path][method]["responses"];
        for status in statuses {
            assert!(
                responses[status]["content"]["application/json"]["example"].is_object(),
                "{} {path} documents {status} with an example",
                method.to_uppercase()
            );
        }
    }

    /// `GET`s each `(path template, path, status)` of `answers`: asserts the status, and
    /// that the answer fits the schema `document` gives for that status.
    pub async fn assert_answers_fit(&self, document: &Value, answers: &[(&str, String, u16)]) {
        use http_server::openapi_checks::{answer_schema, check};
        for (template, path, status) in answers {
            let answer = self.send(Method::GET, path, &[], Body::None).await;
            assert_eq!(answer.status.as_u16(), *status, "GET {path}: {}", answer.body);
            check(document, answer_schema(document, "get", template, *status), &answer.body, path);
        }
    }

    /// Asserts that the page to browse the API document, `/docs/`, is served.
    pub async fn assert_docs_page_served(&self) {
        let page = self.client.get(format!("{}/docs/", self.address)).send().await.expect("GET /docs/");
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap_or_default().contains("swagger-ui"));
    }

    /// The service's metrics, `GET /metrics` (Prometheus text).
    pub async fn metrics(&self) -> String {
        let response = self.client.get(format!("{}/metrics", self.address)).send().await.expect("GET /metrics");
        response.text().await.expect("text")
    }

    /// Asserts that the service's metrics count `command` of `aggregate` both accepted
    /// and rejected, count a `GET` answered 200 under its route template `route`, and
    /// never name `id` (ids never become labels).
    pub async fn assert_commands_and_requests_counted(
        &self,
        (aggregate, command): (&str, &str),
        route: &str,
        id: &str,
    ) {
        let metrics = self.metrics().await;
        for result in ["accepted", "rejected"] {
            let series = format!(r#"commands_total{{aggregate="{aggregate}",command="{command}",result="{result}"}}"#);
            assert!(sample(&metrics, &series) >= 1.0, "{command} {result} is counted: {metrics}");
        }
        let by_route =
            sample(&metrics, &format!(r#"http_requests_total{{method="GET",route="{route}",status="200"}}"#));
        assert!(by_route >= 1.0, "requests are counted under the route template: {metrics}");
        assert!(!metrics.contains(id), "ids never become labels");
    }

    /// Asserts that the service's metrics report its database pool in `schema`: the
    /// most connections it opens (10 under test), and those in use (at least the view
    /// follower's, which leads its feed on a connection it keeps) and idle, within it.
    pub async fn assert_pool_reported(&self, schema: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let metrics = self.metrics().await;
            let state =
                |state: &str| sample(&metrics, &format!(r#"db_pool_connections{{schema="{schema}",state="{state}"}}"#));
            let (in_use, idle) = (state("in_use"), state("idle"));
            let max = sample(&metrics, &format!(r#"db_pool_max_connections{{schema="{schema}"}}"#));
            if max == 10.0 && in_use >= 1.0 {
                assert!(in_use + idle <= max, "in use {in_use} and idle {idle} within the pool's {max}: {metrics}");
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the pool of {schema} is reported: {metrics}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Forgets the latest migration behind the service's back and checks that readiness
    /// then reports the database down (the service runs with a schema it does not
    /// know), in the envelope.
    pub async fn assert_readiness_names_a_missing_migration(&self) {
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
            .execute(&self.pool)
            .await
            .expect("forgetting the latest migration");
        let ready = self.send(Method::GET, "/health/ready", &[], Body::None).await;
        assert_eq!(
            ready.error(StatusCode::SERVICE_UNAVAILABLE, "migration missing"),
            "not ready: database and broker are down (pipeline is up)"
        );
    }
}

/// Whether an answer took the request's shape as valid: anything but 400 and 422 (a
/// 404, 409 or 412 is about what is stored, not about the request).
fn shape_accepted(status: StatusCode) -> bool {
    status != StatusCode::BAD_REQUEST && status != StatusCode::UNPROCESSABLE_ENTITY
}

/// `text` as a query-string value.
fn query_value(text: &str) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    text.bytes().map(|b| if keep(b) { char::from(b).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Exactness of the API document: what it allows, the service accepts, and nothing else.
impl TestService {
    /// Asserts that `document` allows `value` for parameter `name` of operation
    /// `(method, template)` exactly when the service accepts it (answers neither 400 nor
    /// 422) in a request to `path` with `body`: a header parameter is sent as that
    /// header, a query parameter in the query string.
    pub async fn assert_parameter_exact(
        &self,
        document: &Value,
        (method, template): (&str, &str),
        name: &str,
        (path, body): (&str, Option<&Value>),
        value: &str,
    ) {
        use http_server::openapi_checks::{fits, parameter};
        let declared = parameter(document, method, template, name);
        let allowed = fits(document, &declared["schema"], &json!(value));
        let body = body.map_or(Body::None, |body| Body::Json(body.clone()));
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let answer = match declared["in"].as_str() {
            Some("header") => self.send(method, path, &[(name, value)], body).await,
            Some("query") => {
                let separator = if path.contains('?') { '&' } else { '?' };
                self.send(method, &format!("{path}{separator}{name}={}", query_value(value)), &[], body).await
            }
            other => panic!("{name} is in {other:?}, neither a header nor the query"),
        };
        assert_eq!(
            allowed,
            shape_accepted(answer.status),
            "{name}={value:?}: the document {} it, the service answered {} {}",
            if allowed { "allows" } else { "refuses" },
            answer.status,
            answer.body
        );
    }

    /// Asserts that `document` allows `body` for operation `(method, template)` exactly
    /// when the service accepts it (answers neither 400 nor 422) at `path`.
    pub async fn assert_body_exact(
        &self,
        document: &Value,
        (method, template): (&str, &str),
        path: &str,
        body: &Value,
    ) {
        use http_server::openapi_checks::{fits, request_schema};
        let allowed = fits(document, request_schema(document, method, template), body);
        let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let answer = self.send(verb, path, &[], Body::Json(body.clone())).await;
        assert_eq!(
            allowed,
            shape_accepted(answer.status),
            "{} {path} {body}: the document {} it, the service answered {} {}",
            method.to_uppercase(),
            if allowed { "allows" } else { "refuses" },
            answer.status,
            answer.body
        );
    }
}
