//! A number of units of one product in one order line, reservation or restock.

use std::fmt;
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

/// A quantity outside `1..=Quantity::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole number from 1 to {max}, got {got}", max = Quantity::MAX)]
pub struct InvalidQuantity {
    /// The refused value.
    pub got: i64,
}

/// A positive number of units, at most [`Quantity::MAX`]; zero, negatives and larger
/// values cannot be built or deserialized.
///
/// The upper bound keeps sums over many lines far from integer overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(NonZeroU32);

impl Quantity {
    /// The largest quantity accepted in one line or restock.
    pub const MAX: u32 = 1_000_000;

    /// Builds a quantity from any integer, refusing what is out of range.
    pub fn new(value: i64) -> Result<Self, InvalidQuantity> {
        u32::try_from(value)
            .ok()
            .filter(|v| *v <= Self::MAX)
            .and_then(NonZeroU32::new)
            .map(Self)
            .ok_or(InvalidQuantity { got: value })
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<i64> for Quantity {
    type Error = InvalidQuantity;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> Self {
        value.get()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_negative_and_oversized_quantities_cannot_be_built() {
        for bad in [0, -1, i64::from(Quantity::MAX) + 1, i64::MIN, i64::MAX] {
            assert_eq!(Quantity::new(bad), Err(InvalidQuantity { got: bad }), "value {bad}");
        }
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::new(1_000_000).map(Quantity::get), Ok(1_000_000));
    }

    #[test]
    fn quantities_deserialize_only_when_valid() {
        assert_eq!(serde_json::from_str::<Quantity>("3").unwrap().get(), 3);
        for bad in ["0", "-2", "2.5", "\"3\"", "null"] {
            assert!(serde_json::from_str::<Quantity>(bad).is_err(), "input {bad}");
        }
        assert_eq!(serde_json::to_string(&Quantity::new(7).unwrap()).unwrap(), "7");
    }
}
