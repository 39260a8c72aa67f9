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

/// Deserializes a field declared `integer` in the API document as `T` (with
/// `#[serde(deserialize_with = "http_server::extract::whole_number")]`), taking a
/// number with a zero fraction (`3.0`) as the whole number it is: JSON Schema's
/// `integer` is any number without a fractional part, so the document allows `3.0`
/// wherever it allows `3`. Anything else reaches `T` as sent, so its rules and
/// messages apply (a fraction is refused as a floating point number).
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
    let value = match value.as_f64() {
        Some(number) if value.is_f64() && number.fract() == 0.0 => whole(number).unwrap_or(value),
        _ => value,
    };
    T::deserialize(value).map_err(serde::de::Error::custom)
}

/// `number` as a JSON integer, when it is one that fits 64 bits.
fn whole(number: f64) -> Option<serde_json::Value> {
    // Beyond ±2^63 (exactly representable) the cast would saturate.
    const BOUND: f64 = 9_223_372_036_854_775_808.0;
    if (-BOUND..BOUND).contains(&number) {
        Some(serde_json::Value::from(number as i64))
    } else if (0.0..2.0 * BOUND).contains(&number) {
        Some(serde_json::Value::from(number as u64))
    } else {
        None
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Counts {
        #[serde(deserialize_with = "whole_number")]
        units: u32,
        #[serde(default, deserialize_with = "whole_number")]
        change: Option<i64>,
    }

    #[test]
    fn a_whole_number_may_be_written_with_a_zero_fraction() {
        let counts: Counts = parse_json(br#"{"units": 3.0, "change": -2.0}"#).unwrap();
        assert_eq!((counts.units, counts.change), (3, Some(-2)));
        let counts: Counts = parse_json(br#"{"units": 4294967295, "change": null}"#).unwrap();
        assert_eq!((counts.units, counts.change), (4_294_967_295, None));
        assert_eq!(parse_json::<Counts>(br#"{"units": 1e2}"#).unwrap().units, 100);
        for (input, fragment) in [
            (r#"{"units": 2.5}"#, "units: invalid type: floating point `2.5`"),
            (r#"{"units": -1.0}"#, "units: invalid value: integer `-1`"),
            (r#"{"units": 4294967296.0}"#, "units: invalid value: integer `4294967296`"),
            (r#"{"units": 1e30}"#, "units: invalid type: floating point"),
            (r#"{"units": "3"}"#, "units: invalid type: string \"3\""),
            (r#"{"units": null}"#, "units: invalid type: null"),
            (r#"{"units": 1, "change": 0.5}"#, "change: invalid type: floating point `0.5`"),
        ] {
            let error = parse_json::<Counts>(input.as_bytes()).unwrap_err();
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{input}");
            assert!(error.message.contains(fragment), "{input}: {:?} lacks {fragment:?}", error.message);
        }
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
