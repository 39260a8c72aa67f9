//! Closed sets with their wire form pinned.

use serde::{Deserialize, Serialize};

/// An order's status. `PENDING` while an item waits for the inventory service; then
/// `EXECUTED`, `PARTIALLY_EXECUTED` or `CANCELED`; then, by `PUT`, `PAID` → `SHIPPED` →
/// `DELIVERED`. A resolved order (`EXECUTED` or `PARTIALLY_EXECUTED`) not `PAID` within
/// the payment deadline after its resolution is `CANCELED` by the OMS.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Some item still waits for the inventory service.
    Pending,
    /// Every item is reserved.
    Executed,
    /// Some items are reserved, others canceled.
    PartiallyExecuted,
    /// No item is reserved, the customer canceled the order, or it was not paid
    /// within the payment deadline.
    Canceled,
    /// Payment was processed.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Received by the customer.
    Delivered,
}

impl OrderStatus {
    /// Whether an order in this status awaits payment: every item resolved, some
    /// executed, not paid. Only such an order may be paid, and the payment deadline
    /// cancels it when it is not.
    pub fn awaits_payment(self) -> bool {
        matches!(self, Self::Executed | Self::PartiallyExecuted)
    }

    /// The status of an open order with items in these states.
    pub fn from_items(items: impl Iterator<Item = ItemStatus> + Clone) -> Self {
        let mut executed = 0;
        let mut total = 0;
        for status in items {
            total += 1;
            match status {
                ItemStatus::Pending => return Self::Pending,
                ItemStatus::Executed => executed += 1,
                ItemStatus::Canceled => {}
            }
        }
        match executed {
            0 => Self::Canceled,
            n if n == total => Self::Executed,
            _ => Self::PartiallyExecuted,
        }
    }

    /// The wire name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Executed => "EXECUTED",
            Self::PartiallyExecuted => "PARTIALLY_EXECUTED",
            Self::Canceled => "CANCELED",
            Self::Paid => "PAID",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status a client may ask for with `PUT`. `PAID` is refused (409) once the payment
/// deadline has canceled the order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetStatus {
    /// Payment processed; from `EXECUTED` or `PARTIALLY_EXECUTED`, before the payment
    /// deadline.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Received.
    Delivered,
    /// Canceled by the customer; allowed until shipped.
    Canceled,
}

impl From<TargetStatus> for OrderStatus {
    fn from(value: TargetStatus) -> Self {
        match value {
            TargetStatus::Paid => Self::Paid,
            TargetStatus::Shipped => Self::Shipped,
            TargetStatus::Delivered => Self::Delivered,
            TargetStatus::Canceled => Self::Canceled,
        }
    }
}

/// An item's status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemStatus {
    /// Waiting for the inventory service.
    Pending,
    /// Units reserved.
    Executed,
    /// Not served, or canceled by the customer.
    Canceled,
}

/// Why the inventory service could not reserve an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionReason {
    /// Fewer units available than asked.
    InsufficientStock,
    /// The inventory has no such product.
    UnknownProduct,
}

/// Why an item is canceled: the inventory service could not reserve it
/// (`INSUFFICIENT_STOCK`, `UNKNOWN_PRODUCT`), the customer canceled it or the order
/// (`CANCELED_BY_CUSTOMER`), or the order was resolved but not `PAID` within the
/// payment deadline after its resolution (`PAYMENT_TIMEOUT`, the OMS's
/// `ORDER_PAYMENT_TIMEOUT_MS`), so the OMS canceled it and its stock was released.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelReason {
    /// Fewer units available than asked.
    InsufficientStock,
    /// The inventory has no such product.
    UnknownProduct,
    /// The customer canceled the item or the order.
    CanceledByCustomer,
    /// The order was not paid within the payment deadline after it resolved.
    PaymentTimeout,
}

impl From<RejectionReason> for CancelReason {
    fn from(value: RejectionReason) -> Self {
        match value {
            RejectionReason::InsufficientStock => Self::InsufficientStock,
            RejectionReason::UnknownProduct => Self::UnknownProduct,
        }
    }
}
