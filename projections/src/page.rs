//! Keyset pagination: a page of items and an opaque cursor to the next one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass it as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of `items` read with a limit of one more than `limit`, to tell whether
    /// a page follows: then at most `limit` of them, and the cursor at the position
    /// `position` gives of the last.
    pub fn of(mut items: Vec<T>, limit: u32, position: impl FnOnce(&T) -> String) -> Self {
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|last| Cursor::new(position(last)).encode())
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

/// The position after the last item of a page, opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

/// A cursor that was not produced by this service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not valid: pass the nextCursor of a previous page")]
pub struct InvalidCursor;

impl Cursor {
    /// Wraps a position.
    pub fn new(position: impl Into<String>) -> Self {
        Self(position.into())
    }

    /// The position inside.
    pub fn position(&self) -> &str {
        &self.0
    }

    /// The form clients see.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// Reads what [`Cursor::encode`] produced.
    pub fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidCursor)?;
        String::from_utf8(bytes).map(Self).map_err(|_| InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let cursor = Cursor::new("2026-01-01T00:00:00Z|abc");
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        assert_eq!(Cursor::decode("***"), Err(InvalidCursor));
    }
}
