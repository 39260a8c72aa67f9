//! The rule for the ids that tie work together across services (correlation, request
//! and causation ids): one definition for the HTTP headers that bring them in and the
//! Kafka messages that carry them on, since whatever either accepts is stored in event
//! metadata and copied into every message that follows.

/// The longest id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Whether `value` may be recorded as a correlation, request or causation id: 1 to
/// [`MAX_ID_LEN`] visible ASCII characters (no space, no control character: a NUL
/// cannot be stored in PostgreSQL's jsonb, and a header must stay a header).
pub fn is_usable_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_ID_LEN && value.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_visible_ascii() {
        assert!(is_usable_id("checkout-42"));
        assert!(is_usable_id(&"x".repeat(MAX_ID_LEN)));
        for refused in ["", "a b", "a\0b", "tab\t", "é", &"x".repeat(MAX_ID_LEN + 1)] {
            assert!(!is_usable_id(refused), "{refused:?}");
        }
    }
}
