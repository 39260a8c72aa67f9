//! The API document (OpenAPI 3.1), generated from the routes themselves through
//! `utoipa-axum`, served at `/openapi.json` and browsable at `/docs` (Swagger UI,
//! vendored into the binary: the page needs no internet).
//!
//! Each route documents its own answers; [`document_common_answers`] adds those the
//! shared stack gives on every route (body rejections, timeouts, the rate limit), so
//! no route can forget them. The answers every route about one [`Resource`] gives
//! alike ([`NotFound`], [`Contended`], [`ConditionalWrite`]) are written here once and
//! named in the routes' `responses(...)`, beside the answers of their own.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde_json::json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

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
        description: "A dependency (the database) is down, or the request took longer than `HTTP_REQUEST_TIMEOUT_MS`; retry later (`Retry-After`: 1 s).",
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
        operation
            .responses
            .responses
            .entry(answer.status.to_owned())
            .or_insert_with(|| failure_answer(answer.description, answer.example));
    }
}

/// A failed answer: `description`, and the envelope with `message` as its example.
fn failure_answer(description: &str, message: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name("Failure"))))
        .example(Some(json!({"success": false, "data": null, "error": message})))
        .build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
}

/// A kind of resource the API serves one at a time (an order, a product), as the
/// answers about one name it. The examples follow the services' messages.
pub trait Resource {
    /// Its name in descriptions and messages, in lower case: `order`.
    const NAME: &'static str;
    /// The id the examples show.
    const EXAMPLE_ID: &'static str;
}

/// 404: no resource `R` with the id in the path.
pub struct NotFound<R>(PhantomData<R>);

impl<R: Resource> IntoResponses for NotFound<R> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let (name, id) = (R::NAME, R::EXAMPLE_ID);
        let answer = failure_answer(&format!("No such {name}."), &format!("{name} '{id}' not found"));
        BTreeMap::from([("404".to_owned(), answer)])
    }
}

/// 409: concurrent writers to resource `R` kept winning, beyond the retry budget.
pub struct Contended<R>(PhantomData<R>);

impl<R: Resource> IntoResponses for Contended<R> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let message = format!("the {} kept changing concurrently", R::NAME);
        BTreeMap::from([("409".to_owned(), failure_answer("Concurrent writers kept winning; retry.", &message))])
    }
}

/// What a write to resource `R` that takes `If-Match` ([`crate::IfMatch`]) answers
/// for it: 400 when the header is not entity tags (or the body not JSON), 412 when
/// the resource moved on from the versions it names.
pub struct ConditionalWrite<R>(PhantomData<R>);

impl<R: Resource> IntoResponses for ConditionalWrite<R> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let name = R::NAME;
        let malformed = failure_answer(
            "The body is not well-formed JSON, or `If-Match` is not a list of entity tags.",
            "If-Match: expected entity tags such as \"3\" (a version) or *",
        );
        let stale = failure_answer(
            &format!("The {name} is no longer at the version in `If-Match`; nothing was stored. Read it again."),
            &format!("the {name} is at version 4, not the one in If-Match; read it again"),
        );
        BTreeMap::from([("400".to_owned(), malformed), ("412".to_owned(), stale)])
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
