//! Extractors whose rejections are [`ErrorResponse`]s in the envelope, with messages
//! that name the offending field.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::ErrorResponse;

/// A JSON request body. Refuses a missing or wrong content type (415), a body over
/// the limit (413), malformed JSON (400) and JSON that does not fit the type (422,
/// naming the field path, e.g. `orderItems[0].quantity`).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ErrorResponse;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ErrorResponse::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(bytes_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn bytes_rejection(rejection: BytesRejection) -> ErrorResponse {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorResponse::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large"),
        status => ErrorResponse::new(status, format!("could not read the request body: {}", rejection.body_text())),
    }
}

/// Parses a JSON document into `T`, with the error split and worded as [`ApiJson`] does.
///
/// The document must be one JSON object with nothing after it, and no array may hold
/// arrays: serde would otherwise accept a struct written as a positional array
/// (`["alice", [["mug", 2]]]`), which no client means and no contract documents.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ErrorResponse> {
    let document: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ErrorResponse::new(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))?;
    if !document.is_object() {
        return Err(ErrorResponse::new(StatusCode::UNPROCESSABLE_ENTITY, "body: expected a JSON object"));
    }
    if let Some(path) = positional_array(&document, String::new()) {
        return Err(ErrorResponse::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{path}: expected an object, found an array"),
        ));
    }
    // Typed from the bytes, not from `document`: the streaming parser also refuses a
    // field given twice, which a parsed `Value` silently collapses.
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let at = if path == "." { "body".to_owned() } else { path };
        ErrorResponse::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{at}: {}", strip_position(error.inner())))
    })
}

/// The path of the first array nested directly in an array, if any.
fn positional_array(value: &serde_json::Value, path: String) -> Option<String> {
    match value {
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, v)| {
            let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            positional_array(v, path)
        }),
        serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            let path = format!("{path}[{i}]");
            if v.is_array() { Some(path) } else { positional_array(v, path) }
        }),
        _ => None,
    }
}

/// serde_json appends "at line 1 column 42" to data errors; the field path says more.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(index) => text[..index].to_owned(),
        None => text,
    }
}

/// Query-string parameters; a parameter that does not fit is a 422 naming it.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parses a query string into `T`; a parameter that does not fit is a 422 naming it.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ErrorResponse> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        ErrorResponse::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid query parameter '{}': {}", e.path(), e.inner()),
        )
    })
}

/// A single path parameter as text; the handler parses it into a domain id, so an
/// unparseable id becomes that handler's 404, not a framework error.
#[derive(Debug, Clone)]
pub struct ApiPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPath {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state).await.map(|Path(value)| ApiPath(value)).map_err(|rejection| {
            ErrorResponse::new(StatusCode::BAD_REQUEST, format!("invalid path: {}", rejection.body_text()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Line {
        product_id: String,
        quantity: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Body {
        order_items: Vec<Line>,
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_are_422_naming_the_field() {
        let cases: &[(&str, StatusCode, &str)] = &[
            ("{", StatusCode::BAD_REQUEST, "malformed JSON"),
            ("", StatusCode::BAD_REQUEST, "malformed JSON"),
            ("[]", StatusCode::UNPROCESSABLE_ENTITY, "body: expected a JSON object"),
            (r#"{"orderItems":[]} x"#, StatusCode::BAD_REQUEST, "trailing characters"),
            (r#"{"orderItems":[]}{"orderItems":[]}"#, StatusCode::BAD_REQUEST, "trailing characters"),
            (r#"{"orderItems":[["p",1]]}"#, StatusCode::UNPROCESSABLE_ENTITY, "orderItems[0]: expected an object"),
            (
                r#"{"orderItems":[{"productId":"p","quantity":"x"}]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "orderItems[0].quantity",
            ),
            (r#"{"orderItems":[{"productId":"p"}]}"#, StatusCode::UNPROCESSABLE_ENTITY, "missing field `quantity`"),
            (
                r#"{"orderItems":[{"productId":"p","quantity":1,"x":1}]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown field `x`",
            ),
        ];
        for (input, status, fragment) in cases {
            let error = parse_json::<Body>(input.as_bytes()).unwrap_err();
            assert_eq!(error.status, *status, "input {input}");
            assert!(error.message.contains(fragment), "input {input}: message {:?} lacks {fragment:?}", error.message);
            // Positions help find a syntax error; for a shape error the field path says more.
            if *status == StatusCode::UNPROCESSABLE_ENTITY {
                assert!(!error.message.contains(" at line "), "input {input}: {}", error.message);
            }
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ListQuery {
        user_id: Option<String>,
        limit: Option<u32>,
    }

    #[test]
    fn query_parameters_are_decoded_and_bad_ones_named() {
        let query: ListQuery = parse_query("userId=a%20b&limit=2").unwrap();
        assert_eq!((query.user_id.as_deref(), query.limit), (Some("a b"), Some(2)));
        let error = parse_query::<ListQuery>("limit=ten").unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.message.contains("'limit'"), "{}", error.message);
    }
}

/// The `Idempotency-Key` header, when sent: 1 to 255 visible ASCII characters (else
/// the message of a 422).
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    value
        .to_str()
        .ok()
        .filter(|key| (1..=255).contains(&key.len()) && key.chars().all(|c| c.is_ascii_graphic()))
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| "Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned())
}

/// An `If-Match` precondition: the versions a writer last saw (`If-Match: "3"`, or a
/// list `"3", "4"`), `None` when there is no header or it is `*` (any current
/// representation: the write's own not-found answer covers a missing resource).
/// Entity tags are strong and are the resource's version, as `ETag` gives them; a weak
/// tag (`W/"3"`) or a quoted non-version never matches (the write answers 412). A
/// header that is not a list of entity tags is refused (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch(pub Option<Vec<u64>>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut versions = Vec::new();
        let mut any = false;
        let mut present = false;
        for value in parts.headers.get_all(header::IF_MATCH) {
            present = true;
            let text = value.to_str().map_err(|_| if_match_refused())?;
            for tag in text.split(',').map(str::trim).filter(|tag| !tag.is_empty()) {
                if tag == "*" {
                    any = true;
                    continue;
                }
                let (weak, quoted) = match tag.strip_prefix("W/") {
                    Some(rest) => (true, rest),
                    None => (false, tag),
                };
                let opaque = quoted
                    .strip_prefix('"')
                    .and_then(|rest| rest.strip_suffix('"'))
                    .filter(|opaque| !opaque.contains('"'))
                    .ok_or_else(if_match_refused)?;
                // Strong comparison: a weak tag matches nothing; nor does a tag that is
                // not a version of ours.
                if let (false, Ok(version)) = (weak, opaque.parse::<u64>()) {
                    versions.push(version);
                }
            }
        }
        Ok(Self((present && !any).then_some(versions)))
    }
}

fn if_match_refused() -> ErrorResponse {
    ErrorResponse::new(StatusCode::BAD_REQUEST, "If-Match: expected entity tags such as \"3\" (a version) or *")
}

#[cfg(test)]
mod if_match_tests {
    use axum::http::Request;

    use super::*;

    async fn parse(values: &[&str]) -> Result<IfMatch, ErrorResponse> {
        let mut request = Request::builder();
        for value in values {
            request = request.header(header::IF_MATCH, *value);
        }
        let (mut parts, ()) = request.body(()).expect("a request").into_parts();
        IfMatch::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn versions_are_read_from_strong_tags_and_star_means_no_condition() {
        assert_eq!(parse(&[]).await, Ok(IfMatch(None)));
        assert_eq!(parse(&["*"]).await, Ok(IfMatch(None)));
        assert_eq!(parse(&["\"3\""]).await, Ok(IfMatch(Some(vec![3]))));
        assert_eq!(parse(&["\"3\", \"5\"", "\"8\""]).await, Ok(IfMatch(Some(vec![3, 5, 8]))));
        assert_eq!(parse(&["W/\"3\""]).await, Ok(IfMatch(Some(vec![]))), "a weak tag never matches");
        assert_eq!(parse(&["\"abc\""]).await, Ok(IfMatch(Some(vec![]))), "not a version: never matches");
    }

    #[tokio::test]
    async fn what_is_not_an_entity_tag_is_refused() {
        for value in ["3", "\"3", "'3'", "\"3\"x", "W/3"] {
            let refused = parse(&[value]).await.expect_err(value);
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{value}");
        }
    }
}
