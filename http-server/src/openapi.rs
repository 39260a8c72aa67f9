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
                // Any text: one the service would not record is replaced, not refused.
                .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String)))
                .build(),
        )
    };
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    parameters.push(header(
        "x-request-id",
        "This request's id, echoed in the answer and recorded with what it causes: used when it is 1 to 128 visible \
         ASCII characters, else (never refused) replaced by a generated one, as when absent.",
    ));
    parameters.push(header(
        "x-correlation-id",
        "Ties requests (and the events and messages they cause) together: used when it is 1 to 128 visible ASCII \
         characters, else (never refused) the request id is, as when absent.",
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

/// Adds the JSON Schema keyword `keyword` (such as `anyOf`) with `value` to the object
/// schema `name` of `api`'s components, beside its properties: for a rule across fields,
/// which the schema derived from a type cannot state. (utoipa's object schema has no
/// field for these keywords; its extensions are written out as given, so they carry it.)
///
/// # Panics
/// When `api` has no object schema `name`: the routes did not register the type.
pub fn add_schema_keyword(api: &mut OpenApi, name: &str, keyword: &str, value: serde_json::Value) {
    let object = object_schema(api, name);
    object.extensions.get_or_insert_with(Default::default).insert(keyword.to_owned(), value);
}

/// Adds the JSON Schema keyword `keyword` with `value` to property `property` of the
/// object schema `name`, as [`add_schema_keyword`] does to the object.
///
/// # Panics
/// When there is no such property with a schema of its own.
pub fn add_property_keyword(api: &mut OpenApi, name: &str, property: &str, keyword: &str, value: serde_json::Value) {
    let Some(RefOr::T(utoipa::openapi::Schema::Object(field))) = object_schema(api, name).properties.get_mut(property)
    else {
        panic!("the schema {name} has no property {property} of its own");
    };
    field.extensions.get_or_insert_with(Default::default).insert(keyword.to_owned(), value);
}

fn object_schema<'a>(api: &'a mut OpenApi, name: &str) -> &'a mut utoipa::openapi::schema::Object {
    let schema = api.components.as_mut().and_then(|components| components.schemas.get_mut(name));
    let Some(RefOr::T(utoipa::openapi::Schema::Object(object))) = schema else {
        panic!("the API document has no object schema {name}");
    };
    object
}

/// A page of a list: the items, and the cursor of the next page.
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass it as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
