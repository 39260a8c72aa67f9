//! Why an order command is refused. Each variant names the broken rule; the HTTP
//! status each one means is decided at the API boundary, in one place.

use super::status::OrderStatus;
use crate::ProductId;

/// A business rule of the `Order` aggregate refused the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The order does not exist (404).
    #[error("order not found")]
    NotFound,
    /// The order id is taken by a different placement: the idempotency key was reused
    /// for another request (422).
    #[error("this Idempotency-Key was already used for a different order")]
    PlacedWithOtherContent,
    /// An order needs at least one item (422).
    #[error("orderItems must contain at least one item")]
    NoItems,
    /// Too many lines (422).
    #[error("an order may hold at most {max} items")]
    TooManyItems {
        /// The limit.
        max: usize,
    },
    /// The same product twice in one request (422).
    #[error("product '{product_id}' appears more than once in orderItems")]
    DuplicateProduct {
        /// The repeated product.
        product_id: ProductId,
    },
    /// An update that asks for nothing (422).
    #[error("nothing to update: give a status and/or orderItems")]
    NothingToUpdate,
    /// Canceling an item the order does not have (422).
    #[error("product '{product_id}' is not an item of this order")]
    ItemNotInOrder {
        /// The product asked for.
        product_id: ProductId,
    },
    /// Items can only change until the order is paid or canceled (409).
    #[error("items of a {status} order can no longer change")]
    ItemsLocked {
        /// The order's status.
        status: OrderStatus,
    },
    /// The payment deadline canceled the order before it was paid, so it can no longer
    /// move on (409): what a payment that came too late, or lost the race with the
    /// deadline, is told.
    #[error(
        "the order was canceled because it was not paid before its payment deadline: it cannot go from CANCELED to {to}"
    )]
    PaymentDeadlinePassed {
        /// Asked status.
        to: OrderStatus,
    },
    /// The lifecycle does not allow this move (409).
    #[error("an order cannot go from {from} to {to}")]
    TransitionNotAllowed {
        /// Current status.
        from: OrderStatus,
        /// Asked status.
        to: OrderStatus,
    },
}
