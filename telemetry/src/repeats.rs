//! What keeps happening, logged without repeating itself: the first time, again when
//! it changes, and at most once a [`REPEAT_WINDOW`] while it goes on. Lines that
//! differ only in their numbers (ports, ages, counts) say the same thing: their
//! [`shape`] is compared. Used for librdkafka's messages while a broker is away and for
//! readiness while a dependency is down, which a prober asks about every few seconds.

use std::time::Duration;

/// How often a message that keeps coming is logged again.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// What `line` says without its numbers: each run of digits becomes one `#`.
pub fn shape(line: &str) -> String {
    let mut shape = String::with_capacity(line.len());
    for c in line.chars() {
        if !c.is_ascii_digit() {
            shape.push(c);
        } else if !shape.ends_with('#') {
            shape.push('#');
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_left_out_and_words_kept() {
        assert_eq!(shape("1/1 brokers are down"), shape("12/12 brokers are down"));
        assert_eq!(shape("no answer within 2s"), "no answer within #s");
        assert_ne!(shape("Connection refused"), shape("SSL handshake failed"));
    }
}
