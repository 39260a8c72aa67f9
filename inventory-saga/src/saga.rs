//! The reservation saga: consumes order events and reserves or releases stock per item
//! on the product aggregates. Its answers are product events (reserved, rejected,
//! reduced), which the relay publishes as per-item outcomes: the saga itself never
//! writes to Kafka, so an outcome cannot be lost or published without its effect.
//!
//! Idempotent through the domain: each request carries the order event's sequence as
//! the item revision, and a product decides nothing for a revision it has seen.
//!
//! A shipment ships what the order holds. `OrderStatusChanged` 2.0 names the products;
//! one that names none (1.0, written by an OMS older than shipments naming products,
//! upcast with none: orders shipped before the upgrade, or during it while the OMS is
//! still the older one) ships whatever the order still holds, on every product
//! holding units for it, found through `product_reservations` in one query per batch.
//!
//! Order events arrive as the OMS stored them, at whatever version they were written
//! (`OrderPlaced` 1.0 of orders placed by an older release, 2.0 since): each is upcast
//! with the domain's upcasters before it is decoded, and a version this code does not
//! know (a newer release's) is dead-lettered, never guessed at.
//!
//! Every field taken from a message is validated before it reaches the store, like
//! HTTP input; a message that fails is unprocessable (dead-lettered) with a reason
//! naming the field. A re-request (the OMS republishing the order event of an item
//! still pending) is handled like the first request; what it finds already decided
//! has its outcome announced again ([`crate::reannounce`]), since the first
//! announcement may have been lost by the broker.
//!
//! Each message is decoded in its own span, in the trace its headers carry, so the
//! product events it leads to keep the trace of the request that placed the order
//! (and the outcomes the relay publishes from them carry it on). What the saga
//! committed is counted by outcome.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Context;
use domain::inventory::{Product, ProductCommand, ProductEvent};
use domain::order::{ItemStatus, OrderEvent, RejectionReason, TargetStatus};
use domain::{OrderId, ProductId};
use eventstore::{Command, EventMetadata};
use messaging::envelope::RE_REQUEST_HEADER;
use messaging::messages::order_events::OrderEventMessage;
use messaging::{Envelope, Handled, IncomingMessage, MessageHandler, Unprocessable, Verdict};
use telemetry::SagaOutcome;

use crate::products::Products;
use crate::reannounce::Reannouncer;

const ACTOR: &str = "inventory-saga";

/// Turns order events into product commands.
pub struct ReservationSaga {
    products: Arc<Products>,
    reannouncer: Option<Reannouncer>,
}

impl ReservationSaga {
    /// A saga writing through `products`.
    pub fn new(products: Arc<Products>) -> Self {
        Self { products, reannouncer: None }
    }

    /// Announces again, through `reannouncer`, the outcomes that re-requests find
    /// already decided.
    pub fn reannouncing(mut self, reannouncer: Reannouncer) -> Self {
        self.reannouncer = Some(reannouncer);
        self
    }
}

/// What one order event asks of the products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asks {
    /// These commands on these products, in this order (none for an event that asks
    /// nothing).
    Commands(Vec<(ProductId, ProductCommand)>),
    /// `ShipStock` under `revision` on every product holding units for the order: a
    /// shipment that names no products (an `OrderStatusChanged` 1.0), whose products
    /// only the inventory's rows know.
    ShipHeld {
        /// The order shipped.
        order_id: OrderId,
        /// The order event's sequence.
        revision: u64,
    },
}

/// What one order event asks of the products; pure: a shipment naming no products
/// is [`Asks::ShipHeld`], for the caller to resolve against what the order holds.
pub fn commands_for(order_id: OrderId, revision: u64, event: &OrderEvent) -> Asks {
    let reserve = |product_id: &ProductId, quantity| {
        (product_id.clone(), ProductCommand::ReserveStock { order_id, quantity, revision })
    };
    let release = |product_id: &ProductId| (product_id.clone(), ProductCommand::ReleaseStock { order_id, revision });
    let ship = |product_id: &ProductId| (product_id.clone(), ProductCommand::ShipStock { order_id, revision });
    Asks::Commands(match event {
        OrderEvent::OrderPlaced { items, .. } => {
            items.iter().map(|line| reserve(&line.product_id, line.quantity)).collect()
        }
        OrderEvent::OrderItemsChanged { items } => items
            .iter()
            .map(|change| match change.status {
                ItemStatus::Canceled => release(&change.product_id),
                ItemStatus::Pending | ItemStatus::Executed => reserve(&change.product_id, change.quantity),
            })
            .collect(),
        OrderEvent::OrderCanceled { items, .. } => items.iter().map(release).collect(),
        // A shipped order holds only its executed items' units (a canceled item's
        // were released): shipping what it holds is shipping them.
        OrderEvent::OrderStatusChanged { status: TargetStatus::Shipped, items } if items.is_empty() => {
            return Asks::ShipHeld { order_id, revision };
        }
        // Only a shipment names products (the executed items'), whose units leave.
        OrderEvent::OrderStatusChanged { items, .. } => items.iter().map(ship).collect(),
        OrderEvent::ItemExecuted { .. } | OrderEvent::ItemRejected { .. } => vec![],
    })
}

/// The outcome a committed product event records for an order's item, if it is one.
pub fn outcome_of(event: &ProductEvent) -> Option<SagaOutcome> {
    match event {
        ProductEvent::StockReserved { .. } => Some(SagaOutcome::Reserved),
        ProductEvent::ReservationReduced { .. } => Some(SagaOutcome::Reduced),
        ProductEvent::ReservationRejected { reason, .. } => Some(SagaOutcome::Rejected(match reason {
            RejectionReason::InsufficientStock => "INSUFFICIENT_STOCK",
            RejectionReason::UnknownProduct => "UNKNOWN_PRODUCT",
        })),
        ProductEvent::StockReleased { .. } => Some(SagaOutcome::Released),
        ProductEvent::StockShipped { .. } => Some(SagaOutcome::Shipped),
        ProductEvent::ProductAdded { .. }
        | ProductEvent::ProductRenamed { .. }
        | ProductEvent::LowStockThresholdChanged { .. }
        | ProductEvent::StockRestocked { .. }
        | ProductEvent::StockAdjusted { .. }
        | ProductEvent::LowStockReached { .. }
        | ProductEvent::OutOfStock
        | ProductEvent::BackInStock { .. } => None,
    }
}

/// What one message asks of the products.
struct Asked {
    /// The product commands, in the order the event lists the items.
    commands: Vec<Command<Product>>,
    /// A shipment naming no products: the order whose held units to ship, resolved
    /// into `commands` by the batch ([`ship_held`]).
    ships_held: Option<OrderId>,
    /// The message's revision and metadata, for the commands a shipment resolves to.
    revision: u64,
    metadata: EventMetadata,
    /// Whether the OMS asked again for items still pending (header `re-request`):
    /// outcomes already decided are then announced again.
    rerequest: bool,
}

/// The product commands one message asks for, or why it can never be handled;
/// decided in the message's span, so the commands' metadata keep its trace.
fn decode(message: &IncomingMessage) -> Result<Asked, Unprocessable> {
    message.span().in_scope(|| decode_in_span(message))
}

/// Every field the saga takes from a message is checked before anything reaches the
/// store: the envelope's (ids, sequence, names, size: see [`Envelope::parse`]) and the
/// order event's (aggregate type, order id, payload by type and version: see
/// [`OrderEventMessage::decode`]). A reason names the field and quotes at most a short
/// prefix of the offending value.
fn decode_in_span(message: &IncomingMessage) -> Result<Asked, Unprocessable> {
    let poison = |reason: String| Unprocessable(reason);
    let body = message.payload.as_deref().ok_or_else(|| poison("message: empty".into()))?;
    let envelope = Envelope::parse(body).map_err(|e| poison(e.to_string()))?;
    // The revision is the sequence, bounded by `Envelope::parse` (1 to `MAX_SEQUENCE`),
    // so a forged message cannot put it out of reach of the order's real requests.
    let OrderEventMessage { order_id, revision, event } =
        OrderEventMessage::decode(&envelope).map_err(|e| poison(e.to_string()))?;
    let metadata = EventMetadata::new(envelope.correlation_id.clone(), envelope.event_id.to_string(), ACTOR);
    let (commands, ships_held) = match commands_for(order_id, revision, &event) {
        Asks::Commands(commands) => (commands, None),
        Asks::ShipHeld { order_id, .. } => (vec![], Some(order_id)),
    };
    let commands = commands
        .into_iter()
        .map(|(product_id, command)| Command {
            aggregate_id: product_id.as_str().to_owned(),
            command,
            metadata: metadata.clone(),
        })
        .collect();
    Ok(Asked { commands, ships_held, revision, metadata, rerequest: message.header(RE_REQUEST_HEADER) == Some("1") })
}

impl ReservationSaga {
    /// The products holding units for each order that `asked` ships without naming
    /// products, in one query for the whole batch; none asked, no query.
    async fn holding(&self, asked: &[Result<Asked, Unprocessable>]) -> anyhow::Result<HashMap<OrderId, Vec<String>>> {
        let shipped: Vec<OrderId> = asked.iter().filter_map(|a| a.as_ref().ok()?.ships_held).collect();
        let mut holding: HashMap<OrderId, Vec<String>> = HashMap::new();
        if shipped.is_empty() {
            return Ok(holding);
        }
        let held = self.products.held(&shipped).await.context("finding what shipped orders hold")?;
        for row in held {
            holding.entry(OrderId::from(row.order_id)).or_default().push(row.product_id);
        }
        Ok(holding)
    }
}

/// The `ShipStock` commands of a shipment of `order_id` that names no products: one
/// per product holding units for it (`holding`, read before the batch), and per
/// product an earlier message of the batch asked about for it (which may hold units
/// by now: a history replayed in one batch). A product holding nothing decides
/// nothing, so asking one too many is harmless.
fn ship_held(
    order_id: OrderId,
    asked: &Asked,
    holding: &[String],
    earlier: &[Command<Product>],
) -> Vec<Command<Product>> {
    let products: BTreeSet<&str> = holding
        .iter()
        .map(String::as_str)
        .chain(
            earlier
                .iter()
                .filter(|command| command.command.order_id() == Some(order_id))
                .map(|command| command.aggregate_id.as_str()),
        )
        .collect();
    products
        .into_iter()
        .map(|product_id| Command {
            aggregate_id: product_id.to_owned(),
            command: ProductCommand::ShipStock { order_id, revision: asked.revision },
            metadata: asked.metadata.clone(),
        })
        .collect()
}

impl MessageHandler for ReservationSaga {
    /// Decides every reservation of the batch on the products, in message order, and
    /// commits them in one transaction: a hot product is loaded once per batch and
    /// never contends with itself. The shipments of the batch that name no products
    /// find what their orders hold in one query first. For a re-request, each
    /// reservation already decided (decided nothing now) has its outcome announced
    /// again.
    async fn handle(&self, messages: &[IncomingMessage]) -> anyhow::Result<Vec<Verdict>> {
        let mut verdicts: Vec<Verdict> = Vec::with_capacity(messages.len());
        let mut commands = Vec::new();
        let mut asked_by = Vec::new();
        let mut rerequests = Vec::with_capacity(messages.len());
        let decoded: Vec<Result<Asked, Unprocessable>> = messages.iter().map(decode).collect();
        let holding = self.holding(&decoded).await?;
        for (index, decoded) in decoded.into_iter().enumerate() {
            rerequests.push(decoded.as_ref().is_ok_and(|asked| asked.rerequest));
            let mut asked = match decoded {
                Ok(asked) => asked,
                Err(poison) => {
                    verdicts.push(Err(poison));
                    continue;
                }
            };
            if let Some(order_id) = asked.ships_held {
                let held = holding.get(&order_id).map_or(&[][..], Vec::as_slice);
                asked.commands = ship_held(order_id, &asked, held, &commands);
            }
            // A shipment is handled even when its order holds nothing (any more).
            let handled = if asked.commands.is_empty() && asked.ships_held.is_none() {
                Handled::Ignored
            } else {
                Handled::Applied
            };
            asked_by.extend(std::iter::repeat_n(index, asked.commands.len()));
            commands.extend(asked.commands);
            verdicts.push(Ok(handled));
        }
        if commands.is_empty() {
            return Ok(verdicts);
        }
        let results = self.products.execute_all(&commands).await.context("reserving stock")?;
        let mut decided_before = Vec::new();
        for ((result, command), index) in results.into_iter().zip(&commands).zip(asked_by) {
            match result {
                // Committed: a redelivered request decided no events, so counts nothing.
                Ok(committed) => {
                    committed
                        .events
                        .iter()
                        .filter_map(|e| outcome_of(&e.payload))
                        .for_each(telemetry::pipeline::record_saga_outcome);
                    if let (true, true, ProductCommand::ReserveStock { order_id, .. }) =
                        (committed.events.is_empty(), rerequests[index], &command.command)
                    {
                        decided_before.push((command.aggregate_id.clone(), *order_id));
                    }
                }
                Err(rule) => {
                    verdicts[index] = Err(Unprocessable(format!("product {} refused: {rule}", command.aggregate_id)))
                }
            }
        }
        if let Some(reannouncer) = &self.reannouncer
            && !decided_before.is_empty()
        {
            reannouncer.reannounce(&decided_before).await;
        }
        Ok(verdicts)
    }
}

#[cfg(test)]
mod tests {
    //! Decoding order-event messages as the OMS relay publishes them: stored events as
    //! stored, so `OrderPlaced` arrives at 1.0 (orders of the previous release) or 2.0.

    use domain::{ProductId, Quantity};
    use serde_json::{Value, json};

    use super::*;

    fn message(
        order_id: OrderId,
        sequence: i64,
        event_type: &str,
        event_version: &str,
        payload: Value,
    ) -> IncomingMessage {
        let envelope = json!({
            "eventId": uuid::Uuid::new_v4(), "aggregateType": "Order", "aggregateId": order_id.to_string(), "sequence": sequence,
            "eventType": event_type, "eventVersion": event_version, "occurredAt": "2024-05-01T10:00:00Z",
            "correlationId": "checkout-42", "causationId": "req-1", "payload": payload,
        });
        IncomingMessage {
            topic: "oms.order-events".into(),
            partition: 0,
            offset: 0,
            key: Some(order_id.to_string()),
            payload: Some(serde_json::to_vec(&envelope).expect("an envelope encodes")),
            headers: None,
        }
    }

    /// What the saga asks of the products: (product, command), metadata aside.
    fn asked(message: &IncomingMessage) -> Result<Vec<(String, ProductCommand)>, Unprocessable> {
        Ok(decode(message)?.commands.into_iter().map(|c| (c.aggregate_id, c.command)).collect())
    }

    /// A message whose body is `body`, as received.
    fn raw(body: Vec<u8>) -> IncomingMessage {
        IncomingMessage {
            topic: "oms.order-events".into(),
            partition: 0,
            offset: 7,
            key: Some("k".into()),
            payload: Some(body),
            headers: None,
        }
    }

    /// A valid `OrderPlaced` envelope, as JSON, for tests to spoil.
    fn placed_envelope() -> Value {
        let message = message(OrderId::generate(), 1, "OrderPlaced", "2.0", placed_2_0(Value::Null));
        serde_json::from_slice(message.payload.as_deref().expect("a body")).expect("JSON")
    }

    #[test]
    fn hostile_messages_are_unprocessable_with_a_short_reason_naming_the_field() {
        let spoiled = |pointer: &str, value: Value| {
            let mut envelope = placed_envelope();
            *envelope.pointer_mut(pointer).expect(pointer) = value;
            raw(serde_json::to_vec(&envelope).expect("encodes"))
        };
        let huge = "x".repeat(700_000);
        let cases: Vec<(&str, IncomingMessage, &str)> = vec![
            ("a NUL in the correlation id", spoiled("/correlationId", json!("checkout\0-42")), "correlationId"),
            ("a NUL in the causation id", spoiled("/causationId", json!("req\0")), "causationId"),
            ("a NUL in the aggregate id", spoiled("/aggregateId", json!("\0")), "aggregateId"),
            ("a NUL in the aggregate type", spoiled("/aggregateType", json!("Order\0")), "aggregateType"),
            ("a NUL in the event type", spoiled("/eventType", json!("OrderPlaced\0")), "eventType"),
            ("a NUL in the event version", spoiled("/eventVersion", json!("2.0\0")), "eventVersion"),
            ("a NUL in the time", spoiled("/occurredAt", json!("2024-05-01T10:00:00Z\0")), "occurredAt"),
            ("a NUL in a product id", spoiled("/payload/items/0/productId", json!("mug\0")), "payload"),
            ("a NUL in the user id", spoiled("/payload/userId", json!("alice\0")), "payload"),
            ("a 700 kB correlation id", spoiled("/correlationId", json!(huge)), "message"),
            ("a 1 kB correlation id", spoiled("/correlationId", json!("c".repeat(1000))), "correlationId"),
            ("a 1 kB causation id", spoiled("/causationId", json!("c".repeat(1000))), "causationId"),
            ("a correlation id with a space", spoiled("/correlationId", json!("check out")), "correlationId"),
            ("an empty correlation id", spoiled("/correlationId", json!("")), "correlationId"),
            ("an event type of 1 kB", spoiled("/eventType", json!("E".repeat(1000))), "eventType"),
            ("an order id that is no UUID", spoiled("/aggregateId", json!("order-1")), "aggregateId"),
            ("a product event", spoiled("/aggregateType", json!("Product")), "aggregateType"),
            ("a forged huge revision", spoiled("/sequence", json!(4_000_000_000_000_i64)), "sequence"),
            (
                "a revision just past the bound",
                spoiled("/sequence", json!(messaging::envelope::MAX_SEQUENCE + 1)),
                "sequence",
            ),
            ("a zero sequence", spoiled("/sequence", json!(0)), "sequence"),
            ("a negative sequence", spoiled("/sequence", json!(-1)), "sequence"),
            ("a sequence that is text", spoiled("/sequence", json!(huge)), "message"),
            ("a text sequence", spoiled("/sequence", json!("1")), "sequence"),
            ("an event id that is no UUID", spoiled("/eventId", json!("e-1")), "eventId"),
            ("the nil event id", spoiled("/eventId", json!(uuid::Uuid::nil())), "eventId"),
            ("an unknown version", spoiled("/eventVersion", json!("9.0")), "eventVersion"),
            ("a negative quantity", spoiled("/payload/items/0/quantity", json!(-3)), "payload"),
            ("a zero quantity", spoiled("/payload/items/0/quantity", json!(0)), "payload"),
            ("a quantity beyond the maximum", spoiled("/payload/items/0/quantity", json!(u64::MAX)), "payload"),
            ("a product id too long", spoiled("/payload/items/0/productId", json!("p".repeat(65))), "payload"),
            ("a payload that is no object", spoiled("/payload", json!([1, 2])), "payload"),
            ("malformed JSON", raw(b"{\"eventId\": ".to_vec()), "message"),
            ("not JSON at all", raw(vec![0xff, 0x00, 0x01]), "message"),
            ("a body of 700 kB", raw(vec![b' '; 700_000]), "message"),
            ("no body", IncomingMessage { payload: None, ..raw(vec![]) }, "message"),
        ];
        for (label, message, field) in cases {
            let Err(Unprocessable(reason)) = asked(&message) else { panic!("[{label}] must be unprocessable") };
            assert!(reason.contains(field), "[{label}] the reason names {field}: {reason}");
            assert!(reason.len() < 500, "[{label}] the reason quotes a short prefix at most ({} bytes)", reason.len());
            assert!(!reason.chars().any(char::is_control), "[{label}] no control character in the reason: {reason:?}");
        }
    }

    #[test]
    fn ids_and_revisions_at_their_bounds_are_accepted() {
        let mut envelope = placed_envelope();
        envelope["correlationId"] = json!("c".repeat(telemetry::ids::MAX_ID_LEN));
        envelope["sequence"] = json!(messaging::envelope::MAX_SEQUENCE);
        envelope["payload"]["items"][0]["productId"] = json!("p".repeat(domain::ProductId::MAX_LEN));
        let commands = decode(&raw(serde_json::to_vec(&envelope).expect("encodes"))).expect("valid").commands;
        assert_eq!(commands.len(), 2);
        assert_eq!(commands[0].metadata.correlation_id.len(), telemetry::ids::MAX_ID_LEN);
        assert!(
            matches!(commands[0].command, ProductCommand::ReserveStock { revision, .. } if revision == messaging::envelope::MAX_SEQUENCE as u64)
        );
    }

    #[test]
    fn a_message_with_the_re_request_header_is_a_re_request() {
        let mut message = message(OrderId::generate(), 1, "OrderPlaced", "2.0", placed_2_0(Value::Null));
        assert!(!decode(&message).expect("valid").rerequest);
        message.headers = Some(messaging::envelope::owned_headers(&[(messaging::envelope::RE_REQUEST_HEADER, "1")]));
        assert!(decode(&message).expect("valid").rerequest);
    }

    fn reserve(order_id: OrderId, product: &str, quantity: u32, revision: u64) -> (String, ProductCommand) {
        let quantity = Quantity::new(quantity.into()).expect("a quantity");
        (
            ProductId::parse(product).expect("a product id").as_str().to_owned(),
            ProductCommand::ReserveStock { order_id, quantity, revision },
        )
    }

    fn placed_1_0() -> Value {
        json!({"userId": "alice", "items": [{"productId": "mug", "quantity": 2}, {"productId": "tea", "quantity": 1}]})
    }

    fn placed_2_0(key: Value) -> Value {
        let mut fields = placed_1_0();
        fields["idempotencyKey"] = key;
        fields
    }

    #[test]
    fn an_order_placed_at_1_0_and_at_2_0_ask_for_the_same_reservations() {
        let order_id = OrderId::generate();
        let expected = vec![reserve(order_id, "mug", 2, 1), reserve(order_id, "tea", 1, 1)];
        let cases = [
            ("1.0, as the previous release stored it", message(order_id, 1, "OrderPlaced", "1.0", placed_1_0())),
            ("2.0 without a key", message(order_id, 1, "OrderPlaced", "2.0", placed_2_0(Value::Null))),
            ("2.0 with a key", message(order_id, 1, "OrderPlaced", "2.0", placed_2_0(json!("checkout-42")))),
        ];
        for (label, message) in cases {
            assert_eq!(asked(&message), Ok(expected.clone()), "[{label}]");
        }
    }

    #[test]
    fn the_reservations_of_an_upcast_placement_are_caused_by_its_message() {
        let order_id = OrderId::generate();
        let message = message(order_id, 1, "OrderPlaced", "1.0", placed_1_0());
        let envelope: Value = serde_json::from_slice(message.payload.as_deref().expect("a body")).expect("JSON");
        let commands = decode(&message).expect("decodes").commands;
        assert_eq!(commands.len(), 2);
        for command in &commands {
            let metadata = &command.metadata;
            assert_eq!(
                (metadata.correlation_id.as_str(), metadata.causation_id.as_str(), metadata.actor.as_str()),
                ("checkout-42", envelope["eventId"].as_str().expect("eventId"), ACTOR),
                "the customer's correlation, caused by the order event"
            );
        }
    }

    #[test]
    fn an_order_event_of_a_version_this_saga_does_not_know_is_unprocessable() {
        let order_id = OrderId::generate();
        let cases = [
            ("OrderPlaced 3.0, even with fields that fit 2.0", "OrderPlaced", "3.0", placed_2_0(Value::Null)),
            (
                "OrderCanceled 3.0, even with fields that fit 2.0",
                "OrderCanceled",
                "3.0",
                json!({"items": ["mug"], "reason": "PAYMENT_TIMEOUT"}),
            ),
            ("OrderItemsChanged 2.0: it has only a 1.0", "OrderItemsChanged", "2.0", json!({"items": []})),
        ];
        for (label, event_type, event_version, payload) in cases {
            let verdict = asked(&message(order_id, 1, event_type, event_version, payload));
            let expected = format!("eventVersion: {event_type} version {event_version} is not supported");
            assert_eq!(verdict, Err(Unprocessable(expected)), "[{label}]");
        }
    }

    #[test]
    fn a_placement_that_does_not_fit_its_version_is_unprocessable() {
        let order_id = OrderId::generate();
        let cases = [
            ("2.0 without its key", "OrderPlaced", "2.0", placed_1_0()),
            (
                "1.0 with a zero quantity",
                "OrderPlaced",
                "1.0",
                json!({"userId": "alice", "items": [{"productId": "mug", "quantity": 0}]}),
            ),
            ("an unknown type", "OrderTeleported", "1.0", json!({"to": "mars"})),
        ];
        for (label, event_type, event_version, payload) in cases {
            let Err(Unprocessable(reason)) = asked(&message(order_id, 1, event_type, event_version, payload)) else {
                panic!("[{label}] must be unprocessable");
            };
            assert!(
                reason.contains(event_type) && reason.contains(event_version),
                "[{label}] the reason names type and version: {reason}"
            );
        }
    }

    #[test]
    fn every_reservation_event_is_an_outcome_and_a_rejection_is_labelled_with_its_wire_reason() {
        let order_id = OrderId::generate();
        let units = Quantity::new(2).expect("a quantity");
        let cases = [
            (
                ProductEvent::StockReserved { order_id, quantity: 2, reserved_for_order: units, revision: 1 },
                Some(SagaOutcome::Reserved),
            ),
            (
                ProductEvent::ReservationReduced { order_id, quantity: units, reserved_for_order: units, revision: 2 },
                Some(SagaOutcome::Reduced),
            ),
            (ProductEvent::StockReleased { order_id, quantity: 0, revision: 3 }, Some(SagaOutcome::Released)),
            (ProductEvent::StockShipped { order_id, quantity: units, revision: 5 }, Some(SagaOutcome::Shipped)),
            (ProductEvent::OutOfStock, None),
            (ProductEvent::StockRestocked { quantity: units }, None),
        ];
        for (event, expected) in cases {
            assert_eq!(outcome_of(&event), expected, "{event:?}");
        }
        for reason in [RejectionReason::InsufficientStock, RejectionReason::UnknownProduct] {
            let event =
                ProductEvent::ReservationRejected { order_id, requested: units, available: 0, revision: 1, reason };
            let wire = serde_json::to_value(reason).expect("a reason encodes");
            let Some(SagaOutcome::Rejected(label)) = outcome_of(&event) else { panic!("{reason:?} is a rejection") };
            assert_eq!(Some(label), wire.as_str(), "{reason:?}: the label is the wire name");
        }
    }

    #[test]
    fn a_shipment_ships_the_products_it_names_and_other_status_changes_ask_nothing() {
        let order_id = OrderId::generate();
        let ship = |product: &str| (product.to_owned(), ProductCommand::ShipStock { order_id, revision: 5 });
        let shipped =
            message(order_id, 5, "OrderStatusChanged", "2.0", json!({"status": "SHIPPED", "items": ["mug", "tea"]}));
        assert_eq!(asked(&shipped), Ok(vec![ship("mug"), ship("tea")]));
        let paid = message(order_id, 4, "OrderStatusChanged", "2.0", json!({"status": "PAID", "items": []}));
        assert_eq!(asked(&paid), Ok(vec![]));
        // Shipped by an OMS older than 2.0: no products named; the batch ships what the
        // order holds.
        let shipped_1_0 = message(order_id, 5, "OrderStatusChanged", "1.0", json!({"status": "SHIPPED"}));
        assert_eq!(asked(&shipped_1_0), Ok(vec![]), "resolved by the batch");
        assert_eq!(decode(&shipped_1_0).expect("valid").ships_held, Some(order_id));
        assert_eq!(decode(&paid).expect("valid").ships_held, None);
        let expired =
            message(order_id, 4, "OrderCanceled", "2.0", json!({"items": ["mug"], "reason": "PAYMENT_TIMEOUT"}));
        assert_eq!(
            asked(&expired),
            Ok(vec![("mug".to_owned(), ProductCommand::ReleaseStock { order_id, revision: 4 })])
        );
    }

    #[test]
    fn a_shipment_naming_no_products_ships_what_the_order_holds_and_no_other_status_change_does() {
        let order_id = OrderId::generate();
        let shipped = |items: Vec<&str>| OrderEvent::OrderStatusChanged {
            status: TargetStatus::Shipped,
            items: items.into_iter().map(|p| ProductId::parse(p).expect("a product id")).collect(),
        };
        assert_eq!(commands_for(order_id, 5, &shipped(vec![])), Asks::ShipHeld { order_id, revision: 5 });
        assert_eq!(
            commands_for(order_id, 5, &shipped(vec!["mug"])),
            Asks::Commands(vec![(
                ProductId::parse("mug").expect("an id"),
                ProductCommand::ShipStock { order_id, revision: 5 }
            )])
        );
        for status in [TargetStatus::Paid, TargetStatus::Delivered, TargetStatus::Canceled] {
            let changed = OrderEvent::OrderStatusChanged { status, items: vec![] };
            assert_eq!(commands_for(order_id, 6, &changed), Asks::Commands(vec![]), "{status:?}");
        }
    }

    #[test]
    fn what_an_order_holds_is_shipped_with_the_products_the_batch_asked_about_for_it_before() {
        let (order_id, other) = (OrderId::generate(), OrderId::generate());
        let shipment = message(order_id, 7, "OrderStatusChanged", "1.0", json!({"status": "SHIPPED"}));
        let asked = decode(&shipment).expect("valid");
        let earlier = |product: &str, order_id| Command {
            aggregate_id: product.to_owned(),
            command: ProductCommand::ReleaseStock { order_id, revision: 3 },
            metadata: asked.metadata.clone(),
        };
        let earlier = [earlier("cup", order_id), earlier("pot", other), earlier("mug", order_id)];
        let commands = ship_held(order_id, &asked, &["tea".to_owned(), "mug".to_owned()], &earlier);
        let shipped: Vec<(&str, &ProductCommand)> =
            commands.iter().map(|c| (c.aggregate_id.as_str(), &c.command)).collect();
        let ship = ProductCommand::ShipStock { order_id, revision: 7 };
        assert_eq!(
            shipped,
            [("cup", &ship), ("mug", &ship), ("tea", &ship)],
            "each product once, not the other order's"
        );
        assert!(commands.iter().all(|c| c.metadata == asked.metadata), "caused by the shipment's message");
        assert!(ship_held(order_id, &asked, &[], &[]).is_empty(), "an order holding nothing ships nothing");
    }

    #[test]
    fn the_other_order_events_are_still_read_at_1_0() {
        let order_id = OrderId::generate();
        let release = |product: &str| (product.to_owned(), ProductCommand::ReleaseStock { order_id, revision: 3 });
        let canceled = message(order_id, 3, "OrderCanceled", "1.0", json!({"items": ["mug", "tea"]}));
        assert_eq!(asked(&canceled), Ok(vec![release("mug"), release("tea")]));
        let changed = message(
            order_id,
            2,
            "OrderItemsChanged",
            "1.0",
            json!({"items": [{"productId": "mug", "quantity": 5, "status": "PENDING"}]}),
        );
        assert_eq!(asked(&changed), Ok(vec![reserve(order_id, "mug", 5, 2)]));
        let executed =
            message(order_id, 2, "ItemExecuted", "1.0", json!({"productId": "mug", "quantity": 2, "revision": 1}));
        assert_eq!(asked(&executed), Ok(vec![]), "an outcome asks nothing of the products");
    }
}
