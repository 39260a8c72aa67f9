//! What can be asked of a product.

use serde::{Deserialize, Serialize};

use crate::{OrderId, Quantity};

/// A product's display name: 1 to 200 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductName(String);

/// Why a product name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {max} characters and not blank", max = ProductName::MAX_LEN)]
pub struct InvalidProductName;

impl ProductName {
    /// Longest name accepted.
    pub const MAX_LEN: usize = 200;

    /// Parses a name.
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidProductName> {
        let value = value.into();
        if value.trim().is_empty() || value.chars().count() > Self::MAX_LEN || value.chars().any(char::is_control) {
            return Err(InvalidProductName);
        }
        Ok(Self(value))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProductName {
    type Error = InvalidProductName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ProductName> for String {
    fn from(value: ProductName) -> Self {
        value.0
    }
}

/// Put a new product in the catalogue with its first stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddProduct {
    /// Display name.
    pub name: ProductName,
    /// Units on hand; may be zero.
    pub initial_stock: u32,
    /// At or below this many available units the product is low on stock.
    pub low_stock_threshold: u32,
}

/// Why a count of units on hand was corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AdjustmentReason {
    /// Units broken or spoiled (a removal).
    Damaged,
    /// Units missing (a removal).
    Lost,
    /// Units found (an addition).
    Found,
    /// A count corrected after a stocktake (either way).
    CountCorrection,
}

/// A signed, non-zero change of the units on hand, at most 1,000,000 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct UnitChange(i32);

/// Why a unit change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole number from -1000000 to 1000000 other than 0, got {got}")]
pub struct InvalidUnitChange {
    /// The value given.
    pub got: i64,
}

impl UnitChange {
    /// Largest change either way.
    pub const MAX: i32 = 1_000_000;

    /// Parses a change.
    pub fn new(value: i64) -> Result<Self, InvalidUnitChange> {
        match i32::try_from(value) {
            Ok(units) if units != 0 && units.abs() <= Self::MAX => Ok(Self(units)),
            _ => Err(InvalidUnitChange { got: value }),
        }
    }

    /// The change, signed.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for UnitChange {
    type Error = InvalidUnitChange;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<UnitChange> for i64 {
    fn from(value: UnitChange) -> Self {
        value.0.into()
    }
}

/// Change what describes a product: its name, its low-stock threshold, or both (what
/// is not given stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateProduct {
    /// The new display name.
    pub name: Option<ProductName>,
    /// The new low-stock threshold.
    pub low_stock_threshold: Option<u32>,
}

/// A command for the `Product` aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    /// Add the product.
    AddProduct(AddProduct),
    /// Rename it and/or change its low-stock threshold.
    UpdateProduct(UpdateProduct),
    /// Receive more units.
    Restock {
        /// Units received.
        quantity: Quantity,
    },
    /// Correct the units on hand (damaged, lost, found, counted); a removal may not
    /// take units reserved for orders.
    AdjustStock {
        /// Units added (positive) or removed (negative).
        quantity: UnitChange,
        /// Why.
        reason: AdjustmentReason,
    },
    /// Hold `quantity` units in total for one order (the difference to what it holds
    /// is reserved or released).
    ReserveStock {
        /// The order.
        order_id: OrderId,
        /// Units the order's item needs in total.
        quantity: Quantity,
        /// Revision of the order request.
        revision: u64,
    },
    /// Release everything held for one order.
    ReleaseStock {
        /// The order.
        order_id: OrderId,
        /// Revision of the order request (cancellation).
        revision: u64,
    },
    /// The order was shipped: what it holds leaves the warehouse.
    ShipStock {
        /// The order.
        order_id: OrderId,
        /// Revision of the order request (the shipment).
        revision: u64,
    },
}

impl ProductCommand {
    /// The order whose reservation deciding this command reads, if any.
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::ReserveStock { order_id, .. }
            | Self::ReleaseStock { order_id, .. }
            | Self::ShipStock { order_id, .. } => Some(*order_id),
            Self::AddProduct(_) | Self::UpdateProduct(_) | Self::Restock { .. } | Self::AdjustStock { .. } => None,
        }
    }

    /// The command's name, e.g. for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AddProduct(_) => "AddProduct",
            Self::UpdateProduct(_) => "UpdateProduct",
            Self::Restock { .. } => "Restock",
            Self::AdjustStock { .. } => "AdjustStock",
            Self::ReserveStock { .. } => "ReserveStock",
            Self::ReleaseStock { .. } => "ReleaseStock",
            Self::ShipStock { .. } => "ShipStock",
        }
    }
}
