//! What happened to a product's stock. Names and fields are stored forever.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::command::{AdjustmentReason, ProductName, UnitChange};
use crate::order::RejectionReason;
use crate::{OrderId, Quantity};

/// Stock level as shoppers see it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockStatus {
    /// More than the low-stock threshold available.
    InStock,
    /// At or below the threshold, above zero.
    LowStock,
    /// Nothing available.
    OutOfStock,
}

impl StockStatus {
    /// The status of `available` units against `low_stock_threshold`.
    pub fn of(available: u64, low_stock_threshold: u32) -> Self {
        if available == 0 {
            Self::OutOfStock
        } else if available <= u64::from(low_stock_threshold) {
            Self::LowStock
        } else {
            Self::InStock
        }
    }

    /// The wire name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InStock => "IN_STOCK",
            Self::LowStock => "LOW_STOCK",
            Self::OutOfStock => "OUT_OF_STOCK",
        }
    }
}

/// An event of the `Product` aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum ProductEvent {
    /// The product entered the catalogue.
    ProductAdded {
        /// Display name.
        name: ProductName,
        /// Units on hand.
        initial_stock: u32,
        /// Low-stock threshold.
        low_stock_threshold: u32,
    },
    /// The product was renamed.
    ProductRenamed {
        /// The new display name.
        name: ProductName,
    },
    /// The low-stock threshold changed (alerts the new level implies follow).
    LowStockThresholdChanged {
        /// The new threshold.
        low_stock_threshold: u32,
    },
    /// Units were received.
    StockRestocked {
        /// Units received.
        quantity: Quantity,
    },
    /// The units on hand were corrected.
    StockAdjusted {
        /// Units added (positive) or removed (negative).
        quantity: UnitChange,
        /// Why.
        reason: AdjustmentReason,
    },
    /// Units were reserved for an order (`quantity` more; 0 when the order already held
    /// exactly what it asked).
    StockReserved {
        /// The order.
        order_id: OrderId,
        /// Units added to the reservation.
        quantity: u32,
        /// What the order now holds.
        reserved_for_order: Quantity,
        /// Revision of the order request.
        revision: u64,
    },
    /// An order asked for fewer units than it held; the difference is available again.
    ReservationReduced {
        /// The order.
        order_id: OrderId,
        /// Units released.
        quantity: Quantity,
        /// What the order now holds.
        reserved_for_order: Quantity,
        /// Revision of the order request.
        revision: u64,
    },
    /// What an order asked cannot be reserved: not enough stock, or no such product.
    ReservationRejected {
        /// The order.
        order_id: OrderId,
        /// Units asked in total.
        requested: Quantity,
        /// Units that were available.
        available: u64,
        /// Revision of the order request.
        revision: u64,
        /// Why.
        reason: RejectionReason,
    },
    /// Everything held for an order was released (possibly nothing: the release is
    /// still recorded, so older requests for the order are recognised as stale).
    StockReleased {
        /// The order.
        order_id: OrderId,
        /// Units released; 0 when the order held nothing.
        quantity: u32,
        /// Revision of the order request.
        revision: u64,
    },
    /// What an order held was shipped: it leaves `reserved` and the units on hand
    /// (available stays as it was).
    StockShipped {
        /// The order.
        order_id: OrderId,
        /// Units shipped.
        quantity: Quantity,
        /// Revision of the order request (the shipment).
        revision: u64,
    },
    /// Available stock fell to the low-stock threshold or below.
    LowStockReached {
        /// Units available.
        available: u64,
    },
    /// Nothing left.
    OutOfStock,
    /// Stock is available again after running out.
    BackInStock {
        /// Units available.
        available: u64,
    },
}

impl ProductEvent {
    /// The order whose reservation (and announcement) folding this event changes, if any.
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::StockReserved { order_id, .. }
            | Self::ReservationReduced { order_id, .. }
            | Self::ReservationRejected { order_id, .. }
            | Self::StockReleased { order_id, .. }
            | Self::StockShipped { order_id, .. } => Some(*order_id),
            Self::ProductAdded { .. }
            | Self::ProductRenamed { .. }
            | Self::LowStockThresholdChanged { .. }
            | Self::StockRestocked { .. }
            | Self::StockAdjusted { .. }
            | Self::LowStockReached { .. }
            | Self::OutOfStock
            | Self::BackInStock { .. } => None,
        }
    }
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProductAdded { .. } => "ProductAdded",
            Self::ProductRenamed { .. } => "ProductRenamed",
            Self::LowStockThresholdChanged { .. } => "LowStockThresholdChanged",
            Self::StockRestocked { .. } => "StockRestocked",
            Self::StockAdjusted { .. } => "StockAdjusted",
            Self::StockReserved { .. } => "StockReserved",
            Self::ReservationReduced { .. } => "ReservationReduced",
            Self::ReservationRejected { .. } => "ReservationRejected",
            Self::StockReleased { .. } => "StockReleased",
            Self::StockShipped { .. } => "StockShipped",
            Self::LowStockReached { .. } => "LowStockReached",
            Self::OutOfStock => "OutOfStock",
            Self::BackInStock { .. } => "BackInStock",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
