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
}

impl ProductCommand {
    /// The order whose reservation deciding this command reads, if any.
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::ReserveStock { order_id, .. } | Self::ReleaseStock { order_id, .. } => Some(*order_id),
            Self::AddProduct(_) | Self::UpdateProduct(_) | Self::Restock { .. } => None,
        }
    }

    /// The command's name, e.g. for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AddProduct(_) => "AddProduct",
            Self::UpdateProduct(_) => "UpdateProduct",
            Self::Restock { .. } => "Restock",
            Self::ReserveStock { .. } => "ReserveStock",
            Self::ReleaseStock { .. } => "ReleaseStock",
        }
    }
}
