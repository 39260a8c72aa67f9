//! The `Order` aggregate: placement, item changes, per-item outcomes from the inventory
//! service, the payment/shipping lifecycle and cancellation.
//!
//! Every item carries a *revision*: the order version of the event that last asked for
//! it. The inventory service echoes the revision in its outcome, so an outcome for an
//! older request (the customer changed the quantity since) or a redelivered one decides
//! nothing.

mod command;
mod error;
mod event;
mod status;
#[cfg(test)]
mod tests;
mod upcast;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use command::{ItemOutcome, ItemUpdate, OrderCommand, PlaceOrder, RecordItemOutcome, UpdateOrder};
pub use error::OrderError;
pub use event::{ItemChange, OrderEvent, OrderLine};
pub use status::{CancelReason, ItemStatus, OrderStatus, RejectionReason, TargetStatus};
pub use upcast::{UnreadableEvent, decode_event, upcasters};

use crate::{ProductId, Quantity, UserId};

/// An order, as the rules need it and as its events fold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    version: u64,
    placement: Option<Placement>,
    items: Vec<OrderItem>,
    stage: Stage,
}

/// What the order was placed with, kept to recognise a retried placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Placement {
    user_id: UserId,
    lines: Vec<OrderLine>,
}

/// Where the order is beyond its items: open while items resolve, then the lifecycle
/// the client drives with `PUT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Stage {
    #[default]
    Open,
    Paid,
    Shipped,
    Delivered,
    /// Canceled, and why: by the customer or by the payment deadline.
    Canceled(CancelReason),
}

/// One product line of an order and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product.
    pub product_id: ProductId,
    /// Units ordered.
    pub quantity: Quantity,
    /// Where the reservation stands.
    pub status: ItemStatus,
    /// Why the item is canceled, when it is.
    pub reason: Option<CancelReason>,
    /// The order version of the event that last requested this item.
    pub revision: u64,
}

impl Order {
    /// Most lines one order may hold.
    pub const MAX_ITEMS: usize = 100;

    /// How many events this order has; 0 for an order never placed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the order exists.
    pub fn is_placed(&self) -> bool {
        self.placement.is_some()
    }

    /// The customer who placed it.
    pub fn user_id(&self) -> Option<&UserId> {
        self.placement.as_ref().map(|p| &p.user_id)
    }

    /// The items, in the order they were first requested.
    pub fn items(&self) -> &[OrderItem] {
        &self.items
    }

    /// The order's status: set by the lifecycle once paid or canceled, else derived
    /// from its items.
    pub fn status(&self) -> OrderStatus {
        match self.stage {
            Stage::Paid => OrderStatus::Paid,
            Stage::Shipped => OrderStatus::Shipped,
            Stage::Delivered => OrderStatus::Delivered,
            Stage::Canceled(_) => OrderStatus::Canceled,
            Stage::Open => OrderStatus::from_items(self.items.iter().map(|item| item.status)),
        }
    }

    fn item(&self, product_id: &ProductId) -> Option<&OrderItem> {
        self.items.iter().find(|item| &item.product_id == product_id)
    }

    fn item_mut(&mut self, product_id: &ProductId) -> Option<&mut OrderItem> {
        self.items.iter_mut().find(|item| &item.product_id == product_id)
    }

    /// Decides which events `command` leads to, or why it is refused. All rules live
    /// here; an empty list means the command is already satisfied (a retry).
    pub fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::PlaceOrder(cmd) => self.decide_place(cmd),
            OrderCommand::UpdateOrder(cmd) => self.decide_update(cmd),
            OrderCommand::RecordItemOutcome(cmd) => self.decide_outcome(cmd),
            OrderCommand::CancelUnpaid => Ok(self.decide_cancel_unpaid()),
        }
    }

    fn decide_cancel_unpaid(&self) -> Vec<OrderEvent> {
        if !self.status().awaits_payment() {
            return vec![];
        }
        vec![self.cancellation(CancelReason::PaymentTimeout)]
    }

    fn cancellation(&self, reason: CancelReason) -> OrderEvent {
        OrderEvent::OrderCanceled { items: self.items.iter().map(|item| item.product_id.clone()).collect(), reason }
    }

    fn decide_place(&self, cmd: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(placement) = &self.placement {
            // Same id means same idempotency key: a retry of the same request is
            // answered with the order as it is; anything else is a misused key. The
            // recorded key is not compared: orders placed before it was recorded
            // (OrderPlaced 1.0) hold none, and their retries must still be retries.
            return if placement.user_id == cmd.user_id && placement.lines == cmd.items {
                Ok(vec![])
            } else {
                Err(OrderError::PlacedWithOtherContent)
            };
        }
        if cmd.items.is_empty() {
            return Err(OrderError::NoItems);
        }
        if cmd.items.len() > Self::MAX_ITEMS {
            return Err(OrderError::TooManyItems { max: Self::MAX_ITEMS });
        }
        reject_duplicates(cmd.items.iter().map(|line| &line.product_id))?;
        Ok(vec![OrderEvent::OrderPlaced {
            user_id: cmd.user_id,
            items: cmd.items,
            idempotency_key: cmd.idempotency_key,
        }])
    }

    fn decide_update(&self, cmd: UpdateOrder) -> Result<Vec<OrderEvent>, OrderError> {
        if !self.is_placed() {
            return Err(OrderError::NotFound);
        }
        if cmd.items.is_empty() && cmd.status.is_none() {
            return Err(OrderError::NothingToUpdate);
        }
        let mut events = Vec::new();
        let mut after = self.clone();
        if !cmd.items.is_empty() {
            let changes = self.item_changes(&cmd.items)?;
            if !changes.is_empty() {
                let event = OrderEvent::OrderItemsChanged { items: changes };
                after.apply(event.clone());
                events.push(event);
            }
        }
        if let Some(target) = cmd.status
            && let Some(event) = after.status_change(target)?
        {
            events.push(event);
        }
        Ok(events)
    }

    fn item_changes(&self, updates: &[ItemUpdate]) -> Result<Vec<ItemChange>, OrderError> {
        reject_duplicates(updates.iter().map(ItemUpdate::product_id))?;
        let mut changes = Vec::new();
        let mut added = 0;
        for update in updates {
            match update {
                ItemUpdate::SetQuantity { product_id, quantity } => match self.item(product_id) {
                    Some(item) if item.quantity == *quantity && item.status != ItemStatus::Canceled => {}
                    existing => {
                        added += usize::from(existing.is_none());
                        changes.push(ItemChange {
                            product_id: product_id.clone(),
                            quantity: *quantity,
                            status: ItemStatus::Pending,
                        });
                    }
                },
                ItemUpdate::Cancel { product_id } => match self.item(product_id) {
                    None => return Err(OrderError::ItemNotInOrder { product_id: product_id.clone() }),
                    Some(item) if item.status == ItemStatus::Canceled => {}
                    Some(item) => changes.push(ItemChange {
                        product_id: product_id.clone(),
                        quantity: item.quantity,
                        status: ItemStatus::Canceled,
                    }),
                },
            }
        }
        // Checked after computing the changes, so that retrying an update that already
        // applied (same items, then PAID) is answered as the no-op it is.
        if !changes.is_empty() && self.stage != Stage::Open {
            return Err(OrderError::ItemsLocked { status: self.status() });
        }
        if self.items.len() + added > Self::MAX_ITEMS {
            return Err(OrderError::TooManyItems { max: Self::MAX_ITEMS });
        }
        Ok(changes)
    }

    fn status_change(&self, target: TargetStatus) -> Result<Option<OrderEvent>, OrderError> {
        let from = self.status();
        let to = target.into();
        if target == TargetStatus::Canceled {
            return match self.stage {
                Stage::Canceled(_) => Ok(None),
                Stage::Shipped | Stage::Delivered => Err(OrderError::TransitionNotAllowed { from, to }),
                Stage::Open | Stage::Paid => Ok(Some(self.cancellation(CancelReason::CanceledByCustomer))),
            };
        }
        if from == to {
            return Ok(None);
        }
        // An order the deadline canceled says so: a payment that arrives after it (or
        // loses the race with it) learns why the order can no longer be paid.
        if self.stage == Stage::Canceled(CancelReason::PaymentTimeout) {
            return Err(OrderError::PaymentDeadlinePassed { to });
        }
        let allowed = match target {
            TargetStatus::Paid => from.awaits_payment(),
            TargetStatus::Shipped => from == OrderStatus::Paid,
            TargetStatus::Delivered => from == OrderStatus::Shipped,
            TargetStatus::Canceled => unreachable!("handled above"),
        };
        if allowed {
            // Shipping hands the executed items' units to the carrier: the inventory
            // service consumes their reservations.
            let items = match target {
                TargetStatus::Shipped => self
                    .items
                    .iter()
                    .filter(|item| item.status == ItemStatus::Executed)
                    .map(|item| item.product_id.clone())
                    .collect(),
                _ => vec![],
            };
            Ok(Some(OrderEvent::OrderStatusChanged { status: target, items }))
        } else {
            Err(OrderError::TransitionNotAllowed { from, to })
        }
    }

    fn decide_outcome(&self, cmd: RecordItemOutcome) -> Result<Vec<OrderEvent>, OrderError> {
        if !self.is_placed() {
            return Err(OrderError::NotFound);
        }
        let Some(item) = self.item(&cmd.product_id) else {
            return Err(OrderError::ItemNotInOrder { product_id: cmd.product_id });
        };
        // A redelivered outcome, one for a request since superseded, or one that lands
        // after the order was canceled changes nothing here; the inventory service
        // releases what the cancellation covers.
        if matches!(self.stage, Stage::Canceled(_))
            || item.status != ItemStatus::Pending
            || item.revision != cmd.revision
        {
            return Ok(vec![]);
        }
        let product_id = cmd.product_id;
        let quantity = item.quantity;
        let revision = cmd.revision;
        Ok(vec![match cmd.outcome {
            ItemOutcome::Executed => OrderEvent::ItemExecuted { product_id, quantity, revision },
            ItemOutcome::Rejected(reason) => OrderEvent::ItemRejected { product_id, quantity, revision, reason },
        }])
    }
}

fn reject_duplicates<'a>(ids: impl Iterator<Item = &'a ProductId>) -> Result<(), OrderError> {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(OrderError::DuplicateProduct { product_id: id.clone() });
        }
    }
    Ok(())
}

impl Aggregate for Order {
    const TYPE: &'static str = "Order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    async fn handle(&mut self, command: OrderCommand, _: &(), sink: &EventSink<Self>) -> Result<(), OrderError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: OrderEvent) {
        self.version += 1;
        let revision = self.version;
        match event {
            OrderEvent::OrderPlaced { user_id, items, .. } => {
                self.items = items
                    .iter()
                    .map(|line| OrderItem {
                        product_id: line.product_id.clone(),
                        quantity: line.quantity,
                        status: ItemStatus::Pending,
                        reason: None,
                        revision,
                    })
                    .collect();
                self.placement = Some(Placement { user_id, lines: items });
            }
            OrderEvent::OrderItemsChanged { items } => {
                for change in items {
                    let reason = (change.status == ItemStatus::Canceled).then_some(CancelReason::CanceledByCustomer);
                    let item = OrderItem {
                        product_id: change.product_id,
                        quantity: change.quantity,
                        status: change.status,
                        reason,
                        revision,
                    };
                    match self.item_mut(&item.product_id) {
                        Some(existing) => *existing = item,
                        None => self.items.push(item),
                    }
                }
            }
            OrderEvent::ItemExecuted { product_id, .. } => {
                if let Some(item) = self.item_mut(&product_id) {
                    item.status = ItemStatus::Executed;
                    item.reason = None;
                }
            }
            OrderEvent::ItemRejected { product_id, reason, .. } => {
                if let Some(item) = self.item_mut(&product_id) {
                    item.status = ItemStatus::Canceled;
                    item.reason = Some(reason.into());
                }
            }
            OrderEvent::OrderStatusChanged { status, .. } => {
                self.stage = match status {
                    TargetStatus::Paid => Stage::Paid,
                    TargetStatus::Shipped => Stage::Shipped,
                    TargetStatus::Delivered => Stage::Delivered,
                    TargetStatus::Canceled => Stage::Canceled(CancelReason::CanceledByCustomer),
                };
            }
            OrderEvent::OrderCanceled { reason, .. } => {
                self.stage = Stage::Canceled(reason);
                for item in &mut self.items {
                    if item.status != ItemStatus::Canceled {
                        item.status = ItemStatus::Canceled;
                        item.reason = Some(reason);
                    }
                    item.revision = revision;
                }
            }
        }
    }
}
