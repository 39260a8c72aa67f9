//! Why a product command is refused. Not having enough stock is *not* an error: it is
//! an outcome (`ReservationRejected`).

/// A business rule of the `Product` aggregate refused the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// No such product (404). Reservations on an unknown product are not refused but
    /// rejected as an outcome (`UNKNOWN_PRODUCT`).
    #[error("product not found")]
    NotFound,
    /// The product id is taken (409).
    #[error("a product with this id already exists")]
    AlreadyExists,
    /// A removal larger than what is available: reserved units are promised (409).
    #[error("cannot remove {asked} units: {available} are available (reserved units are promised to orders)")]
    NotEnoughAvailable {
        /// Units the removal asked for.
        asked: u64,
        /// Units available.
        available: u64,
    },
}
