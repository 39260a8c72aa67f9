//! What keeps happening, logged without repeating itself: the first time, again when
//! it changes, and at most once a [`REPEAT_WINDOW`] while it goes on. Lines that
//! differ only in their numbers (ports, ages, counts) say the same thing: their
//! [`shape`] is compared. Used for librdkafka's messages while a broker is away, for
//! readiness while a dependency is down, which a prober asks about every few seconds,
//! and for the storage failures that fail every request while the database does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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

/// Lines remembered at most; beyond that, those not logged within the window are
/// forgotten.
const MOST_REMEMBERED: usize = 256;

/// The lines seen recently, by shape: when each was last logged, and how many like it
/// came since.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    seen: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    logged_at: Instant,
    held_back: u64,
}

impl Repeats {
    /// Each line logged at most once a `window`.
    pub fn new(window: Duration) -> Self {
        Self { window, seen: HashMap::new() }
    }

    /// Whether a line of shape `shape` coming at `now` is logged; if so, how many like
    /// it were held back since the last one was.
    pub fn admit(&mut self, shape: String, now: Instant) -> Option<u64> {
        if let Some(seen) = self.seen.get_mut(&shape) {
            if now.duration_since(seen.logged_at) < self.window {
                seen.held_back += 1;
                return None;
            }
            let held_back = std::mem::take(&mut seen.held_back);
            seen.logged_at = now;
            return Some(held_back);
        }
        if self.seen.len() >= MOST_REMEMBERED {
            let window = self.window;
            self.seen.retain(|_, seen| now.duration_since(seen.logged_at) < window);
        }
        // So many different lines within one window are logged, not remembered.
        if self.seen.len() < MOST_REMEMBERED {
            self.seen.insert(shape, Seen { logged_at: now, held_back: 0 });
        }
        Some(0)
    }
}

/// `line`, saying how many like it came since it was last logged, if any did.
pub fn with_repeats(line: &str, repeats: u64) -> String {
    if repeats == 0 { line.to_owned() } else { format!("{line} (and {repeats} more like it since it was last logged)") }
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

    #[test]
    fn a_line_is_logged_first_then_once_a_window_with_the_count_held_back() {
        let mut repeats = Repeats::new(Duration::from_secs(60));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(repeats.admit("all brokers down".into(), at(0)), Some(0));
        assert_eq!(repeats.admit("all brokers down".into(), at(1)), None);
        assert_eq!(repeats.admit("all brokers down".into(), at(59)), None);
        assert_eq!(repeats.admit("another".into(), at(59)), Some(0), "another line is not held back by the first");
        assert_eq!(repeats.admit("all brokers down".into(), at(60)), Some(2), "the two held back are counted");
        assert_eq!(repeats.admit("all brokers down".into(), at(61)), None);
        assert_eq!(repeats.admit("all brokers down".into(), at(200)), Some(1));
    }

    #[test]
    fn memory_is_bounded_by_forgetting_lines_not_logged_within_the_window() {
        let mut repeats = Repeats::new(Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..MOST_REMEMBERED {
            repeats.admit(format!("line {i}"), start);
        }
        assert_eq!(repeats.seen.len(), MOST_REMEMBERED);
        assert_eq!(repeats.admit("beyond".into(), start), Some(0), "logged");
        assert_eq!(repeats.admit("beyond".into(), start), Some(0), "not remembered while every line is recent");
        assert_eq!(repeats.seen.len(), MOST_REMEMBERED);
        repeats.admit("one more".into(), start + Duration::from_secs(61));
        assert_eq!(repeats.seen.len(), 1, "the old lines are forgotten, the new one kept");
        repeats.admit("and another".into(), start + Duration::from_secs(62));
        assert_eq!(repeats.seen.len(), 2);
    }
}
