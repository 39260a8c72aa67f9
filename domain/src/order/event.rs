//! What happened to an order. Names and fields are stored forever: add a version and an
//! upcaster rather than change one (see [`super::upcast`]).

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::status::{CancelReason, ItemStatus, RejectionReason, TargetStatus};
use crate::{ProductId, Quantity, UserId};

/// One product and its quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// The product.
    pub product_id: ProductId,
    /// Units.
    pub quantity: Quantity,
}

/// The new state of one item after a customer change: `PENDING` asks the inventory
/// service to hold `quantity` units in total, `CANCELED` to release them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemChange {
    /// The product.
    pub product_id: ProductId,
    /// The item's quantity after the change.
    pub quantity: Quantity,
    /// `PENDING` or `CANCELED`.
    pub status: ItemStatus,
}

/// An event of the `Order` aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum OrderEvent {
    /// A customer placed the order; every item is pending.
    ///
    /// Version 2.0 added `idempotency_key`; 1.0 events are upcast with it `null`.
    OrderPlaced {
        /// The customer.
        user_id: UserId,
        /// The lines, one per product.
        items: Vec<OrderLine>,
        /// The `Idempotency-Key` the client placed the order with, if any: which client
        /// request created the order, for auditors. Not part of what makes a retry the
        /// same placement (the key already chose the order id). Always written, `null`
        /// when absent; a 2.0 payload without it is malformed, so that only the
        /// upcaster turns 1.0 into 2.0.
        #[serde(deserialize_with = "Option::deserialize")]
        idempotency_key: Option<String>,
    },
    /// The customer added, resized or canceled items.
    OrderItemsChanged {
        /// The changed items.
        items: Vec<ItemChange>,
    },
    /// The inventory service reserved the item's units.
    ItemExecuted {
        /// The product.
        product_id: ProductId,
        /// Units reserved.
        quantity: Quantity,
        /// The item revision answered.
        revision: u64,
    },
    /// The inventory service could not reserve the item; it is canceled.
    ItemRejected {
        /// The product.
        product_id: ProductId,
        /// Units asked.
        quantity: Quantity,
        /// The item revision answered.
        revision: u64,
        /// Why.
        reason: RejectionReason,
    },
    /// The order moved along its lifecycle (paid, shipped, delivered).
    ///
    /// Version 2.0 added `items`; 1.0 events are upcast with none.
    OrderStatusChanged {
        /// The new status.
        status: TargetStatus,
        /// The products whose reserved units this change consumes, for the inventory
        /// service to ship: the executed items' when the order is shipped, none
        /// otherwise (and none for orders shipped before 2.0: the inventory service then
        /// ships whatever the order still holds).
        items: Vec<ProductId>,
    },
    /// The order was canceled (by the customer, or by the OMS when it was not paid in
    /// time); every reserved unit must be released.
    ///
    /// Version 2.0 added `reason`; 1.0 events (customer cancellations, the only kind
    /// then) are upcast with `CANCELED_BY_CUSTOMER`.
    OrderCanceled {
        /// Every product of the order, for the inventory service to release.
        items: Vec<ProductId>,
        /// `CANCELED_BY_CUSTOMER` or `PAYMENT_TIMEOUT`: what the items are canceled
        /// for, so that downstream consumers can tell one from the other.
        reason: CancelReason,
    },
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrderPlaced { .. } => "OrderPlaced",
            Self::OrderItemsChanged { .. } => "OrderItemsChanged",
            Self::ItemExecuted { .. } => "ItemExecuted",
            Self::ItemRejected { .. } => "ItemRejected",
            Self::OrderStatusChanged { .. } => "OrderStatusChanged",
            Self::OrderCanceled { .. } => "OrderCanceled",
        }
        .to_owned()
    }

    /// Each event type has its own version; bump it (and add an upcaster) when its
    /// fields change, never the others'.
    fn event_version(&self) -> String {
        match self {
            Self::OrderPlaced { .. } | Self::OrderStatusChanged { .. } | Self::OrderCanceled { .. } => "2.0",
            Self::OrderItemsChanged { .. } | Self::ItemExecuted { .. } | Self::ItemRejected { .. } => "1.0",
        }
        .to_owned()
    }
}
