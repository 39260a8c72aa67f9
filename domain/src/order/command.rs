//! What can be asked of an order. Values are already valid (parsed at the edge).

use serde::{Deserialize, Serialize};

use super::event::OrderLine;
use super::status::{RejectionReason, TargetStatus};
use crate::ProductId;
use crate::quantity::Quantity;

/// A command for the `Order` aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Place a new order.
    PlaceOrder(PlaceOrder),
    /// Change items and/or move the order along its lifecycle, atomically.
    UpdateOrder(UpdateOrder),
    /// Record what the inventory service decided for one item.
    RecordItemOutcome(RecordItemOutcome),
    /// Cancel the order because its payment deadline passed: only while it is resolved
    /// (`EXECUTED` or `PARTIALLY_EXECUTED`) and unpaid; otherwise nothing happens. The
    /// OMS issues it, never a client; when the deadline passed is the OMS's to judge.
    CancelUnpaid,
}

/// Place an order for a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    /// Who orders.
    pub user_id: crate::UserId,
    /// What, one line per product.
    pub items: Vec<OrderLine>,
    /// The client's `Idempotency-Key`, when it sent one; recorded in the event.
    pub idempotency_key: Option<String>,
}

/// Change items, then set a status; all of it applies or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateOrder {
    /// Item changes, at most one per product.
    pub items: Vec<ItemUpdate>,
    /// The status to move to.
    pub status: Option<TargetStatus>,
}

/// One item change asked by the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemUpdate {
    /// Set the quantity of an item, adding it if the order lacks it; the item goes back
    /// to `PENDING` until the inventory service answers.
    SetQuantity {
        /// The product.
        product_id: ProductId,
        /// The new quantity.
        quantity: Quantity,
    },
    /// Cancel one item; its reserved units are released.
    Cancel {
        /// The product.
        product_id: ProductId,
    },
}

impl OrderCommand {
    /// The command's name, e.g. for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PlaceOrder(_) => "PlaceOrder",
            Self::UpdateOrder(_) => "UpdateOrder",
            Self::RecordItemOutcome(_) => "RecordItemOutcome",
            Self::CancelUnpaid => "CancelUnpaid",
        }
    }
}

impl ItemUpdate {
    /// The product this change is about.
    pub fn product_id(&self) -> &ProductId {
        match self {
            Self::SetQuantity { product_id, .. } | Self::Cancel { product_id } => product_id,
        }
    }
}

/// What the inventory service decided for one requested item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordItemOutcome {
    /// The product.
    pub product_id: ProductId,
    /// The item revision the decision answers.
    pub revision: u64,
    /// The decision.
    pub outcome: ItemOutcome,
}

/// The inventory service's answer for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemOutcome {
    /// The units are reserved.
    Executed,
    /// The units could not be reserved.
    Rejected(RejectionReason),
}
