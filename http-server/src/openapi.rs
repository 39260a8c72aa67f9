//! The API document (OpenAPI 3.1), generated from the routes themselves through
//! `utoipa-axum`, served at `/openapi.json` and browsable at `/docs` (Swagger UI,
//! vendored into the binary: the page needs no internet).
//!
//! Each route documents its own answers; [`document_common_answers`] adds those the
//! shared stack gives on every route (body rejections, timeouts, the rate limit), so
//! no route can forget them.

use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};

/// The envelope of a successful answer: `data` holds the result, `error` is null.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Success<T> {
    /// Always `true`.
    #[schema(example = true)]
    pub success: bool,
    /// The result.
    pub data: T,
    /// Always `null`.
    #[schema(value_type = Option<String>, example = json!(null))]
    pub error: Option<String>,
}

/// The envelope of a failed answer: `data` is null, `error` says what went wrong
/// (and, for a client's mistake, which field or state).
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// Always `false`.
    #[schema(example = false)]
    pub success: bool,
    /// Always `null`.
    #[schema(value_type = Option<String>, example = json!(null))]
    pub data: Option<String>,
    /// A message for the client.
    #[schema(example = "orderItems[0].quantity: must be a whole number from 1 to 1000000, got 0")]
    pub error: String,
}

/// An answer every route of a kind can give, whatever its handler does.
struct CommonAnswer {
    status: &'static str,
    description: &'static str,
    example: &'static str,
    /// Only routes that read a JSON body give it.
    body_only: bool,
}

const COMMON_ANSWERS: &[CommonAnswer] = &[
    CommonAnswer {
        status: "400",
        description: "The body is not well-formed JSON.",
        example: "malformed JSON body: EOF while parsing an object at line 1 column 1",
        body_only: true,
    },
    CommonAnswer {
        status: "413",
        description: "The body is larger than the limit (`HTTP_BODY_LIMIT_BYTES`).",
        example: "request body is too large",
        body_only: true,
    },
    CommonAnswer {
        status: "415",
        description: "The body is not sent as `Content-Type: application/json`.",
        example: "expected a JSON body with Content-Type: application/json",
        body_only: true,
    },
    CommonAnswer {
        status: "422",
        description: "The JSON does not fit the request shape, or a value breaks a rule; the message names the field.",
        example: "body: missing field `quantity`",
        body_only: true,
    },
    CommonAnswer {
        status: "429",
        description: "The instance's rate limit (`HTTP_RATE_LIMIT_PER_SECOND`, off by default) is exhausted; see `Retry-After`.",
        example: "too many requests; retry in 1 s",
        body_only: false,
    },
    CommonAnswer {
        status: "503",
        description: "A dependency (the database) is down, or the request took longer than `HTTP_REQUEST_TIMEOUT_MS`; retry later.",
        example: "the request took longer than 10000 ms; retry later",
        body_only: false,
    },
];

/// Adds to every operation of `api` what the shared stack gives every route: the
/// request-id and correlation-id headers, and the [`COMMON_ANSWERS`] it does not
/// document itself (with the envelope schema they refer to). Operations tagged
/// `operations` (probes, metrics) get the headers only.
pub fn document_common_answers(api: &mut OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    components.schemas.entry("Failure".to_owned()).or_insert_with(<Failure as utoipa::PartialSchema>::schema);
    for item in api.paths.paths.values_mut() {
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            if !operation.tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t == "operations")) {
                add_common_answers(operation);
            }
            add_id_headers(operation);
        }
    }
}

/// `x-request-id` and `x-correlation-id` on the way in, `x-request-id` on every answer.
fn add_id_headers(operation: &mut Operation) {
    let header = |name: &str, description: &str| {
        RefOr::T(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String)
                        .max_length(Some(128)),
                ))
                .build(),
        )
    };
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    parameters.push(header("x-request-id", "This request's id, 1 to 128 visible ASCII characters; generated when absent or unusable. Echoed in the answer."));
    parameters.push(header(
        "x-correlation-id",
        "Ties requests (and the events and messages they cause) together; the request id when absent.",
    ));
    for answer in operation.responses.responses.values_mut() {
        if let RefOr::T(answer) = answer {
            answer.headers.entry("x-request-id".to_owned()).or_insert_with(|| {
                RefOr::T(HeaderBuilder::new().description(Some("The request's id, as sent or generated.")).build())
            });
        }
    }
}

fn add_common_answers(operation: &mut Operation) {
    let reads_body = operation.request_body.is_some();
    for answer in COMMON_ANSWERS.iter().filter(|a| reads_body || !a.body_only) {
        operation.responses.responses.entry(answer.status.to_owned()).or_insert_with(|| {
            let content = ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("Failure"))))
                .example(Some(json!({"success": false, "data": null, "error": answer.example})))
                .build();
            RefOr::T(
                ResponseBuilder::new().description(answer.description).content("application/json", content).build(),
            )
        });
    }
}

/// A page of a list: the items, and the cursor of the next page.
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass it as `cursor` to get the next page; `null` on the last page.
    #[schema(example = "b3JkZXItNDI")]
    pub next_cursor: Option<String>,
}
