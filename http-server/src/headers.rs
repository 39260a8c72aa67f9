//! The request headers the write routes share, `If-Match` and `Idempotency-Key`: each
//! rule is enforced here and documented from here (the parameter builders put the
//! same rule in the API document), so the document says exactly what is refused.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use crate::ErrorResponse;

/// What `If-Match` may hold: `*`, or a comma-separated list of entity tags (strong
/// `"3"` or weak `W/"3"`, the quoted part visible ASCII other than `"`), with optional
/// white space and empty elements around the commas (RFC 9110, sections 5.6.1 and
/// 8.8.3). [`IfMatch`] refuses anything else.
pub const IF_MATCH_PATTERN: &str = r#"^(?:\*|[\t ,]*(?:W/)?"[!#-~]*"(?:[\t ]*,[\t ,]*(?:W/)?"[!#-~]*")*[\t ,]*)$"#;

/// What `Idempotency-Key` may hold: visible ASCII ([`IDEMPOTENCY_KEY_MAX_LEN`] at most).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]+$";

/// The longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// The `Idempotency-Key` header, when sent: 1 to 255 visible ASCII characters (else
/// the message of a 422).
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    value
        .to_str()
        .ok()
        .filter(|key| (1..=IDEMPOTENCY_KEY_MAX_LEN).contains(&key.len()) && key.chars().all(|c| c.is_ascii_graphic()))
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| "Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned())
}

/// The optional `Idempotency-Key` header parameter, with `description` (what a retry
/// gets on this route) and the rule [`idempotency_key`] enforces.
pub fn idempotency_key_parameter(description: &str) -> Parameter {
    header_parameter(
        "Idempotency-Key",
        description,
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(IDEMPOTENCY_KEY_MAX_LEN))
            .pattern(Some(IDEMPOTENCY_KEY_PATTERN)),
    )
}

/// The optional `If-Match` header parameter, with `description` and the rule
/// [`IfMatch`] enforces ([`IF_MATCH_PATTERN`]).
pub fn if_match_parameter(description: &str) -> Parameter {
    header_parameter(
        "If-Match",
        description,
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(IF_MATCH_PATTERN)),
    )
}

/// An optional header: absent, or text (never `null`).
fn header_parameter(name: &str, description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// An `If-Match` precondition: the versions a writer last saw (`If-Match: "3"`, or a
/// list `"3", "4"`), `None` when there is no header or it is `*` (any current
/// representation: the write's own not-found answer covers a missing resource).
/// Entity tags are strong and are the resource's version, as `ETag` gives them; a weak
/// tag (`W/"3"`) or a quoted non-version never matches (the write answers 412). A
/// header that is not `*` or a list of entity tags ([`IF_MATCH_PATTERN`]) is refused
/// (400). Several `If-Match` fields make one list, as HTTP combines them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch(pub Option<Vec<u64>>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut fields = Vec::new();
        for value in parts.headers.get_all(header::IF_MATCH) {
            fields.push(value.to_str().map_err(|_| if_match_refused())?);
        }
        if fields.is_empty() {
            return Ok(Self(None));
        }
        parse_if_match(&fields.join(", ")).map(Self).ok_or_else(if_match_refused)
    }
}

/// The versions `If-Match: text` names (`None` for `*`); `None` when it is not what
/// [`IF_MATCH_PATTERN`] allows.
fn parse_if_match(text: &str) -> Option<Option<Vec<u64>>> {
    let bytes = text.as_bytes();
    if text == "*" {
        return Some(None);
    }
    let skip = |mut at: usize| {
        while bytes.get(at).is_some_and(|b| matches!(b, b' ' | b'\t' | b',')) {
            at += 1;
        }
        at
    };
    let mut versions = Vec::new();
    let mut at = skip(0);
    if at == bytes.len() {
        return None;
    }
    loop {
        let weak = bytes[at..].starts_with(b"W/");
        if weak {
            at += 2;
        }
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let opaque_start = at + 1;
        let opaque_len = bytes[opaque_start..].iter().position(|b| *b == b'"')?;
        let opaque = &text[opaque_start..opaque_start + opaque_len];
        if !opaque.bytes().all(|b| b == b'!' || (b'#'..=b'~').contains(&b)) {
            return None;
        }
        // Strong comparison: a weak tag matches nothing; nor does a tag that is not a
        // version of ours as `ETag` writes it (`"03"` is not `"3"`).
        if let (false, Some(version)) = (weak, canonical_version(opaque)) {
            versions.push(version);
        }
        let separator = opaque_start + opaque_len + 1;
        at = skip(separator);
        if at == bytes.len() {
            return Some(Some(versions));
        }
        if !bytes[separator..at].contains(&b',') {
            return None;
        }
    }
}

/// `text` as a version, when it is one written as `ETag` writes versions.
fn canonical_version(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let no_leading_zero = text == "0" || !text.starts_with('0');
    if digits && no_leading_zero { text.parse().ok() } else { None }
}

fn if_match_refused() -> ErrorResponse {
    ErrorResponse::new(StatusCode::BAD_REQUEST, "If-Match: expected entity tags such as \"3\" (a version) or *")
}

#[cfg(test)]
mod tests {
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
        assert_eq!(parse(&[", \"3\",, \"4\" ,"]).await, Ok(IfMatch(Some(vec![3, 4]))), "empty list elements");
        assert_eq!(parse(&["W/\"3\""]).await, Ok(IfMatch(Some(vec![]))), "a weak tag never matches");
        assert_eq!(parse(&["\"abc\""]).await, Ok(IfMatch(Some(vec![]))), "not a version: never matches");
        assert_eq!(parse(&["\"03\", \"+3\""]).await, Ok(IfMatch(Some(vec![]))), "not as ETag writes 3");
        assert_eq!(parse(&["\"a,b\", \"7\""]).await, Ok(IfMatch(Some(vec![7]))), "a comma inside a tag");
    }

    #[tokio::test]
    async fn what_is_not_an_entity_tag_is_refused() {
        for value in ["3", "\"3", "'3'", "\"3\"x", "W/3", "", " , ", "\"3\" \"4\"", "*, \"3\"", "w/\"3\"", "\"a b\""] {
            let refused = parse(&[value]).await.expect_err(value);
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{value}");
        }
        assert!(parse(&["*", "\"3\""]).await.is_err(), "* is never part of a list");
    }

    /// The documented pattern, as a JSON Schema validator reads it.
    fn documented(pattern: &str) -> impl Fn(&str) -> bool {
        let validator = jsonschema::draft202012::new(&serde_json::json!({"type": "string", "pattern": pattern}))
            .expect("the pattern compiles");
        move |value| validator.is_valid(&serde_json::json!(value))
    }

    #[test]
    fn if_match_is_refused_exactly_when_the_documented_pattern_refuses_it() {
        let pattern = documented(IF_MATCH_PATTERN);
        let samples = [
            "*",
            "\"3\"",
            "W/\"3\"",
            "\"\"",
            "\"3\",\"4\"",
            "\"3\" ,\t\"4\"",
            ",\"3\"",
            "\"3\",",
            ",,\"3\",,\"4\",,",
            "\"!#~\"",
            "\"a,b\"",
            "\"a\"\"b\"",
            "\"3\" \"4\"",
            "",
            ",",
            " ",
            "**",
            "* ",
            "*,\"3\"",
            "\"3\",*",
            "W/",
            "W/\"",
            "\"3",
            "3\"",
            "'3'",
            "w/\"3\"",
            "W /\"3\"",
            "\"a b\"",
            "\"a\tb\"",
            "\"\u{7f}\"",
            "\"é\"",
            "x\"3\"",
        ];
        for sample in samples {
            assert_eq!(parse_if_match(sample).is_some(), pattern(sample), "If-Match: {sample:?}");
        }
    }

    #[test]
    fn idempotency_keys_are_refused_exactly_when_the_documented_schema_refuses_them() {
        let pattern = documented(IDEMPOTENCY_KEY_PATTERN);
        let long = "k".repeat(IDEMPOTENCY_KEY_MAX_LEN);
        let too_long = "k".repeat(IDEMPOTENCY_KEY_MAX_LEN + 1);
        for (sample, fits) in [
            ("checkout-42", true),
            ("!~", true),
            (long.as_str(), true),
            (too_long.as_str(), false),
            ("", false),
            ("a b", false),
            ("a\tb", false),
            ("é", false),
        ] {
            let documented = pattern(sample) && sample.chars().count() <= IDEMPOTENCY_KEY_MAX_LEN;
            assert_eq!(documented, fits, "the document on {sample:?}");
            let mut headers = axum::http::HeaderMap::new();
            if let Ok(value) = axum::http::HeaderValue::from_str(sample) {
                headers.insert("idempotency-key", value);
                assert_eq!(idempotency_key(&headers).is_ok(), fits, "the server on {sample:?}");
            }
        }
    }
}
