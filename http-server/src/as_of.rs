//! `asOf`, as both services take it on `GET` of one order or product: a version, or
//! an RFC 3339 time. Exactly what the documented pattern ([`AS_OF_PATTERN`]) allows is
//! accepted, the calendar included; the service's own type (through [`deserialize`])
//! then reads it.

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

/// A version: a whole number from 1, without leading zeros, at most 19 digits (so it
/// fits 64 bits).
macro_rules! version {
    () => {
        "[1-9][0-9]{0,18}"
    };
}

/// An RFC 3339 full date: a day of the proleptic Gregorian calendar from year 0000 to
/// 9999 (29 February in leap years only: divisible by 4, centuries by 400).
macro_rules! date {
    () => {
        concat!(
            "(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])",
            "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))",
            "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[048]|[2468][048]|[13579][26])00)-02-29)",
        )
    };
}

/// An RFC 3339 full time: hours, minutes, seconds (no leap second), an optional
/// fraction, and `Z` or the offset from UTC.
macro_rules! time {
    () => {
        concat!(
            "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?",
            "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])",
        )
    };
}

/// What `asOf` may hold: a version, or an RFC 3339 date-time (`T` or `t` between
/// date and time).
pub const AS_OF_PATTERN: &str = concat!("^(?:", version!(), "|", date!(), "[Tt]", time!(), ")$");

/// The optional `asOf` query parameter, with `description` and [`AS_OF_PATTERN`].
pub fn as_of_parameter(description: &str) -> Parameter {
    ParameterBuilder::new()
        .name("asOf")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(AS_OF_PATTERN))))
        .example(Some(serde_json::json!("2")))
        .build()
}

/// Deserializes an optional `asOf` (with `#[serde(default, deserialize_with =
/// "http_server::as_of::deserialize")]`) into `T`, refusing what [`AS_OF_PATTERN`]
/// does not allow before `T` reads it.
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let Some(text) = Option::<String>::deserialize(deserializer)? else { return Ok(None) };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && !is_version(&text) {
        return Err(serde::de::Error::custom(if text.bytes().all(|b| b == b'0') {
            "versions start at 1".to_owned()
        } else {
            format!(
                "give a version as a whole number from 1 to 9999999999999999999 without leading zeros, got '{text}'"
            )
        }));
    }
    if !is_version(&text) && !is_date_time(&text) {
        return Err(serde::de::Error::custom(format!(
            "give a version (1, 2, ...) or an RFC 3339 time such as 2026-12-01T10:00:00Z, got '{text}'"
        )));
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// Whether `text` is a version as [`AS_OF_PATTERN`] writes one.
fn is_version(text: &str) -> bool {
    (1..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0')
}

/// Whether `text` is a date-time as [`AS_OF_PATTERN`] writes one.
fn is_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<u32> {
        let digits = bytes.get(from..to)?;
        digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let at = |index: usize, allowed: &[u8]| bytes.get(index).is_some_and(|b| allowed.contains(b));
    let (Some(year), Some(month), Some(day)) = (number(0, 4), number(5, 7), number(8, 10)) else { return false };
    let (Some(hour), Some(minute), Some(second)) = (number(11, 13), number(14, 16), number(17, 19)) else {
        return false;
    };
    let punctuated = at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":");
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if !punctuated || !(1..=days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    let mut rest = &bytes[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| (a.is_ascii_digit() && b.is_ascii_digit()).then(|| (a - b'0') * 10 + (b - b'0'));
            matches!((two(*h1, *h2), two(*m1, *m2)), (Some(hours), Some(minutes)) if hours <= 23 && minutes <= 59)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_accepted_exactly_when_the_documented_pattern_accepts_it() {
        let validator = jsonschema::draft202012::new(&serde_json::json!({"type": "string", "pattern": AS_OF_PATTERN}))
            .expect("the pattern compiles");
        let mut samples: Vec<String> = [
            "1",
            "2",
            "9999999999999999999",
            "10000000000000000000",
            "0",
            "00",
            "01",
            "+1",
            "-1",
            "1.0",
            " 1",
            "",
            "2026-12-01T10:00:00Z",
            "2026-12-01t10:00:00z",
            "2026-12-01 10:00:00Z",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00:00.5Z",
            "2026-12-01T10:00:00.123456789123Z",
            "2026-12-01T10:00:00.Z",
            "2026-12-01T10:00:00+23:59",
            "2026-12-01T10:00:00-00:00",
            "2026-12-01T10:00:00+24:00",
            "2026-12-01T10:00:00+05:60",
            "2026-12-01T10:00:00+0500",
            "2026-12-01T10:00:00\u{2212}05:00",
            "2026-12-01T23:59:60Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:60:00Z",
            "2026-12-32T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-00-01T10:00:00Z",
            "2026-12-00T10:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "0000-02-29T00:00:00Z",
            "0400-02-29T00:00:00Z",
            "0100-02-29T00:00:00Z",
            "9999-12-31T23:59:59+23:59",
            "26-12-01T10:00:00Z",
            "2026-12-01T10:00:00Zx",
            "x2026-12-01T10:00:00Z",
            "yesterday",
            "2026-1-01T10:00:00Z",
        ]
        .map(str::to_owned)
        .into();
        // Every 29 February of four centuries, and the last day of every month of one year.
        samples.extend((1600..2000).map(|year| format!("{year:04}-02-29T00:00:00Z")));
        samples.extend((1..=12).flat_map(|m| (28..=32).map(move |d| format!("2025-{m:02}-{d:02}T00:00:00Z"))));
        for sample in samples {
            let documented = validator.is_valid(&serde_json::json!(sample));
            let accepted = is_version(&sample) || is_date_time(&sample);
            assert_eq!(accepted, documented, "asOf={sample:?}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Query {
        #[serde(default, deserialize_with = "deserialize")]
        #[serde(rename = "asOf")]
        as_of: Option<String>,
    }

    #[test]
    fn refusals_name_the_rule() {
        let refused =
            |text: &str| crate::extract::parse_query::<Query>(&format!("asOf={text}")).expect_err(text).message;
        assert!(refused("0").contains("versions start at 1"));
        assert!(refused("007").contains("without leading zeros"));
        assert!(refused("yesterday").contains("give a version (1, 2, ...) or an RFC 3339 time"));
        assert!(refused("").contains("give a version (1, 2, ...) or an RFC 3339 time"));
        assert!(refused("2026-02-30T00:00:00Z").contains("RFC 3339"));
        let query: Query = crate::extract::parse_query("asOf=2026-12-01T10%3A00%3A00%2B01%3A00").unwrap();
        assert_eq!(query.as_of.as_deref(), Some("2026-12-01T10:00:00+01:00"));
        assert_eq!(crate::extract::parse_query::<Query>("").unwrap().as_of, None);
    }
}
