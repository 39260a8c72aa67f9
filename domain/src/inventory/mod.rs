//! The `Product` aggregate: stock received, units reserved per order, and the stock
//! alerts that follow from crossing thresholds.
//!
//! A reservation is keyed by order and carries the revision of the order event that
//! asked for it. A request whose revision is not newer than the last one decided for
//! that order is a redelivery and decides nothing: reserving twice is reserving once,
//! and a late release cannot undo a newer reservation.
//!
//! The per-order part of a product (its reservations and announcements, one entry per
//! order ever served) is a *working set*: folding the whole history gives every entry,
//! but a store may instead keep the entries beside the events, leave them out of the
//! product it keeps in memory ([`Product::forget_orders`]) and put back only the
//! orders a decision reads ([`Product::remember_order`], keys from
//! [`ProductCommand::order_id`]) before deciding. `decide` reads one order's entry at a
//! time and `apply` changes only the entry of the event's order, so a product holding
//! the entries of the orders it is asked about decides and folds exactly as one
//! holding them all.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use command::{
    AddProduct, AdjustmentReason, InvalidUnitChange, ProductCommand, ProductName, UnitChange, UpdateProduct,
};
pub use error::ProductError;
pub use event::{ProductEvent, StockStatus};

use crate::order::RejectionReason;
use crate::{OrderId, Quantity};

/// A product's stock, as the rules need it and as its events fold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    version: u64,
    name: Option<ProductName>,
    stock: Stock,
    /// The orders known to this value that asked for this product: all of them when
    /// folded from the whole history, only the working set when a store keeps them
    /// apart (see the module). Persistent, so the copies taken by batch rollbacks cost
    /// nothing.
    #[serde(default)]
    reservations: imbl::OrdMap<OrderId, Reservation>,
    /// Per order, the sequence of this product's event that announced the outcome of
    /// the order's last decided reservation request (reserved, reduced or rejected);
    /// none once a later release decided it. Derived, for announcing that outcome again
    /// when a re-request finds it decided (the first announcement may have been lost).
    #[serde(default)]
    announcements: imbl::OrdMap<OrderId, u64>,
}

/// The counters behind a product's stock status. `Product::apply` folds them; deciding
/// folds a copy to see where new events lead, without copying the reservations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stock {
    received: u64,
    /// Adjustments in all (units found minus units removed).
    #[serde(default)]
    adjusted: i64,
    reserved: u64,
    /// Units that left with shipped orders.
    #[serde(default)]
    shipped: u64,
    low_stock_threshold: u32,
}

impl Stock {
    fn apply(&mut self, event: &ProductEvent) {
        match event {
            ProductEvent::ProductAdded { initial_stock, low_stock_threshold, .. } => {
                self.received = (*initial_stock).into();
                self.low_stock_threshold = *low_stock_threshold;
            }
            ProductEvent::LowStockThresholdChanged { low_stock_threshold } => {
                self.low_stock_threshold = *low_stock_threshold;
            }
            ProductEvent::StockRestocked { quantity } => self.received += u64::from(quantity.get()),
            ProductEvent::StockAdjusted { quantity, .. } => self.adjusted += i64::from(quantity.get()),
            ProductEvent::StockReserved { quantity, .. } => self.reserved += u64::from(*quantity),
            // Saturating: a store that reads an order's entry newer than the events it
            // folded (another instance committed in between) decides on a state that can
            // release more than its counter holds; its append then conflicts and the
            // state is dropped, but folding the decision must not panic first.
            ProductEvent::ReservationReduced { quantity, .. } => {
                self.reserved = self.reserved.saturating_sub(u64::from(quantity.get()));
            }
            ProductEvent::StockReleased { quantity, .. } => {
                self.reserved = self.reserved.saturating_sub(u64::from(*quantity));
            }
            ProductEvent::StockShipped { quantity, .. } => {
                self.reserved = self.reserved.saturating_sub(u64::from(quantity.get()));
                self.shipped += u64::from(quantity.get());
            }
            ProductEvent::ProductRenamed { .. }
            | ProductEvent::ReservationRejected { .. }
            | ProductEvent::LowStockReached { .. }
            | ProductEvent::OutOfStock
            | ProductEvent::BackInStock { .. } => {}
        }
    }

    /// Units the warehouse holds: received plus adjustments minus shipped (never below
    /// zero).
    fn on_hand(&self) -> u64 {
        u64::try_from(i128::from(self.received) + i128::from(self.adjusted) - i128::from(self.shipped)).unwrap_or(0)
    }

    /// `decide` keeps `reserved <= on_hand`; the saturation only keeps a corrupted
    /// history from crashing whoever folds it.
    fn available(&self) -> u64 {
        self.on_hand().saturating_sub(self.reserved)
    }

    fn status(&self) -> StockStatus {
        StockStatus::of(self.available(), self.low_stock_threshold)
    }
}

/// Units held for one order, and the revision of the request that set them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Units held; 0 after a rejection or release.
    pub quantity: u32,
    /// Revision of the order request last decided.
    pub revision: u64,
}

/// Everything a product holds for one order: what a store keeps apart per
/// (product, order) when it keeps the working set out of memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEntry {
    /// Units held and the revision last decided.
    pub reservation: Reservation,
    /// The sequence of the event that announced the last decided request's outcome,
    /// if any (see [`Product::announcement`]).
    pub announcement: Option<u64>,
}

impl Product {
    /// How many events this product has; 0 for one never added.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the product exists.
    pub fn exists(&self) -> bool {
        self.name.is_some()
    }

    /// The product's name.
    pub fn name(&self) -> Option<&ProductName> {
        self.name.as_ref()
    }

    /// The alert threshold: at or below it (and above zero) stock is low.
    pub fn low_stock_threshold(&self) -> u32 {
        self.stock.low_stock_threshold
    }

    /// Units received in all: initial stock plus restocks.
    pub fn received(&self) -> u64 {
        self.stock.received
    }

    /// Units the warehouse holds: received plus adjustments minus shipped.
    pub fn on_hand(&self) -> u64 {
        self.stock.on_hand()
    }

    /// Units that left with shipped orders.
    pub fn shipped(&self) -> u64 {
        self.stock.shipped
    }

    /// Units held for orders.
    pub fn reserved(&self) -> u64 {
        self.stock.reserved
    }

    /// Units that can still be reserved.
    pub fn available(&self) -> u64 {
        self.stock.available()
    }

    /// What one order holds of this product.
    pub fn reservation(&self, order_id: &OrderId) -> Reservation {
        self.reservations.get(order_id).copied().unwrap_or_default()
    }

    /// The sequence of the event that announced the outcome of `order_id`'s last
    /// decided reservation request, if its last decision was one (see the field).
    pub fn announcement(&self, order_id: &OrderId) -> Option<u64> {
        self.announcements.get(order_id).copied()
    }

    /// What this product holds for one order: its reservation and announcement, as
    /// [`Product::reservation`] and [`Product::announcement`] give them.
    pub fn order_entry(&self, order_id: &OrderId) -> OrderEntry {
        OrderEntry { reservation: self.reservation(order_id), announcement: self.announcement(order_id) }
    }

    /// Puts back what a store kept apart for one order (see the module), replacing what
    /// this value holds for it. An entry with no reservation (never asked) is left out,
    /// as a fold leaves it.
    pub fn remember_order(&mut self, order_id: OrderId, entry: OrderEntry) {
        if entry == OrderEntry::default() {
            self.reservations.remove(&order_id);
        } else {
            self.reservations.insert(order_id, entry.reservation);
        }
        match entry.announcement {
            Some(sequence) => self.announcements.insert(order_id, sequence),
            None => self.announcements.remove(&order_id),
        };
    }

    /// Drops every per-order entry, keeping the stock: what a store keeps in memory
    /// (or in a snapshot) when it keeps the orders apart.
    pub fn forget_orders(&mut self) {
        self.reservations = imbl::OrdMap::new();
        self.announcements = imbl::OrdMap::new();
    }

    /// How many orders this value holds entries for.
    pub fn orders_held(&self) -> usize {
        self.reservations.len().max(self.announcements.len())
    }

    /// In stock, low or out, from what is available.
    pub fn stock_status(&self) -> StockStatus {
        self.stock.status()
    }

    /// Decides which events `command` leads to, or why it is refused. All rules live
    /// here; an empty list means the command is already satisfied (a redelivery).
    pub fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        let events = match command {
            ProductCommand::AddProduct(add) => {
                if self.exists() {
                    return Err(ProductError::AlreadyExists);
                }
                vec![ProductEvent::ProductAdded {
                    name: add.name,
                    initial_stock: add.initial_stock,
                    low_stock_threshold: add.low_stock_threshold,
                }]
            }
            ProductCommand::UpdateProduct(update) => {
                self.ensure_exists()?;
                // Only what changes is recorded: the same update again decides nothing.
                let renamed = update.name.filter(|name| self.name.as_ref() != Some(name));
                let threshold = update.low_stock_threshold.filter(|t| *t != self.stock.low_stock_threshold);
                renamed
                    .map(|name| ProductEvent::ProductRenamed { name })
                    .into_iter()
                    .chain(
                        threshold
                            .map(|low_stock_threshold| ProductEvent::LowStockThresholdChanged { low_stock_threshold }),
                    )
                    .collect()
            }
            ProductCommand::Restock { quantity } => {
                self.ensure_exists()?;
                vec![ProductEvent::StockRestocked { quantity }]
            }
            ProductCommand::AdjustStock { quantity, reason } => {
                self.ensure_exists()?;
                let removed = u64::from(quantity.get().unsigned_abs());
                if quantity.get() < 0 && removed > self.available() {
                    return Err(ProductError::NotEnoughAvailable { asked: removed, available: self.available() });
                }
                vec![ProductEvent::StockAdjusted { quantity, reason }]
            }
            // Reservations and releases are answered even for a product that does not
            // exist (yet): the request is recorded in its stream, so that a redelivery
            // after the product is added cannot reserve for an item already rejected.
            ProductCommand::ReserveStock { order_id, quantity, revision } => {
                self.decide_reservation(order_id, quantity, revision)
            }
            ProductCommand::ReleaseStock { order_id, revision } => {
                let held = self.reservation(&order_id);
                if held.revision >= revision {
                    vec![]
                } else {
                    // Recorded even when nothing is held, so that an older reservation
                    // request redelivered later cannot reserve for a released item.
                    vec![ProductEvent::StockReleased { order_id, quantity: held.quantity, revision }]
                }
            }
            ProductCommand::ShipStock { order_id, revision } => {
                let held = self.reservation(&order_id);
                match Quantity::new(held.quantity.into()) {
                    // Nothing held (an item canceled, or already shipped): nothing leaves.
                    Ok(quantity) if held.revision < revision => {
                        vec![ProductEvent::StockShipped { order_id, quantity, revision }]
                    }
                    _ => vec![],
                }
            }
        };
        Ok(self.with_alerts(events))
    }

    fn ensure_exists(&self) -> Result<(), ProductError> {
        if self.exists() { Ok(()) } else { Err(ProductError::NotFound) }
    }

    fn decide_reservation(&self, order_id: OrderId, wanted: Quantity, revision: u64) -> Vec<ProductEvent> {
        let held = self.reservation(&order_id);
        if held.revision >= revision {
            return vec![];
        }
        let wanted_units = wanted.get();
        if wanted_units <= held.quantity {
            let released = held.quantity - wanted_units;
            return match Quantity::new(released.into()) {
                Ok(quantity) => {
                    vec![ProductEvent::ReservationReduced { order_id, quantity, reserved_for_order: wanted, revision }]
                }
                Err(_) => {
                    vec![ProductEvent::StockReserved { order_id, quantity: 0, reserved_for_order: wanted, revision }]
                }
            };
        }
        if !self.exists() {
            return vec![ProductEvent::ReservationRejected {
                order_id,
                requested: wanted,
                available: 0,
                revision,
                reason: RejectionReason::UnknownProduct,
            }];
        }
        let missing = wanted_units - held.quantity;
        if u64::from(missing) <= self.available() {
            return vec![ProductEvent::StockReserved {
                order_id,
                quantity: missing,
                reserved_for_order: wanted,
                revision,
            }];
        }
        // All or nothing per item: a canceled item must hold nothing, so what it held
        // before the bigger request is released too.
        let mut events = vec![ProductEvent::ReservationRejected {
            order_id,
            requested: wanted,
            available: self.available(),
            revision,
            reason: RejectionReason::InsufficientStock,
        }];
        if held.quantity > 0 {
            events.push(ProductEvent::StockReleased { order_id, quantity: held.quantity, revision });
        }
        events
    }

    /// Appends the alerts that `events` trigger by moving the stock status.
    fn with_alerts(&self, mut events: Vec<ProductEvent>) -> Vec<ProductEvent> {
        if events.is_empty() || !(self.exists() || matches!(events[0], ProductEvent::ProductAdded { .. })) {
            return events;
        }
        // A new product starts from "in stock", so one added empty or low is announced.
        let before = if self.exists() { self.stock_status() } else { StockStatus::InStock };
        let mut after = self.stock;
        for event in &events {
            after.apply(event);
        }
        let available = after.available();
        match (before, after.status()) {
            (b, StockStatus::OutOfStock) if b != StockStatus::OutOfStock => events.push(ProductEvent::OutOfStock),
            (StockStatus::InStock, StockStatus::LowStock) => events.push(ProductEvent::LowStockReached { available }),
            (StockStatus::OutOfStock, s) if s != StockStatus::OutOfStock => {
                events.push(ProductEvent::BackInStock { available })
            }
            _ => {}
        }
        events
    }
}

impl Aggregate for Product {
    const TYPE: &'static str = "Product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;
    type Services = ();

    async fn handle(&mut self, command: ProductCommand, _: &(), sink: &EventSink<Self>) -> Result<(), ProductError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: ProductEvent) {
        self.version += 1;
        self.stock.apply(&event);
        match event {
            ProductEvent::ProductAdded { name, .. } | ProductEvent::ProductRenamed { name } => self.name = Some(name),
            ProductEvent::StockReserved { order_id, reserved_for_order, revision, .. }
            | ProductEvent::ReservationReduced { order_id, reserved_for_order, revision, .. } => {
                self.reservations.insert(order_id, Reservation { quantity: reserved_for_order.get(), revision });
                self.announcements.insert(order_id, self.version);
            }
            ProductEvent::ReservationRejected { order_id, revision, .. } => {
                let held = self.reservations.entry(order_id).or_default();
                held.revision = revision;
                self.announcements.insert(order_id, self.version);
            }
            ProductEvent::StockReleased { order_id, revision, .. }
            | ProductEvent::StockShipped { order_id, revision, .. } => {
                // A release of the same revision completes a rejection (what the item
                // held before is given back): the rejection stays its announcement. A
                // shipment has a newer revision than any request: nothing to announce.
                if self.reservation(&order_id).revision != revision {
                    self.announcements.remove(&order_id);
                }
                self.reservations.insert(order_id, Reservation { quantity: 0, revision });
            }
            ProductEvent::StockRestocked { .. }
            | ProductEvent::StockAdjusted { .. }
            | ProductEvent::LowStockThresholdChanged { .. }
            | ProductEvent::LowStockReached { .. }
            | ProductEvent::OutOfStock
            | ProductEvent::BackInStock { .. } => {}
        }
    }
}
