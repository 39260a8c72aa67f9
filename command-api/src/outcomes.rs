//! The OMS outcome consumer: applies the inventory service's per-item outcomes to
//! orders. Idempotent through the domain: a redelivered or superseded outcome decides
//! nothing; one for a canceled order changes nothing (the inventory service releases
//! what the cancellation covers).
//!
//! Every field taken from a message is validated before it reaches the store, like
//! HTTP input; a message that fails is unprocessable (dead-lettered) with a reason
//! naming the field.
//!
//! Each outcome is decoded in its message's span, in the trace its headers carry: the
//! order events it leads to stay in the trace of the request that placed the order.

use std::sync::Arc;

use anyhow::Context;
use domain::order::{ItemOutcome, Order, OrderCommand, RecordItemOutcome};
use eventstore::{Command, EventMetadata};
use messaging::messages::outcomes::Outcome;
use messaging::{Envelope, Handled, IncomingMessage, MessageHandler, Unprocessable, Verdict};

use crate::orders::Orders;

const ACTOR: &str = "oms-outcomes";

/// Applies outcomes to orders.
pub struct OutcomeHandler {
    orders: Arc<Orders>,
}

impl OutcomeHandler {
    /// A handler writing through `orders`.
    pub fn new(orders: Arc<Orders>) -> Self {
        Self { orders }
    }
}

/// The order command one outcome message asks for, or why it can never be handled;
/// decided in the message's span, so the command's metadata keep its trace.
fn decode(message: &IncomingMessage) -> Result<Command<Order>, Unprocessable> {
    message.span().in_scope(|| decode_in_span(message))
}

/// Every field the consumer takes from a message is checked before anything reaches
/// the store: the envelope's (ids, sequence, names, size: see [`Envelope::parse`]) and
/// the outcome's (version, aggregate type, message type, payload fields: see
/// [`Outcome::decode`]). A reason names the field and quotes at most a short prefix of
/// the offending value.
fn decode_in_span(message: &IncomingMessage) -> Result<Command<Order>, Unprocessable> {
    let poison = |reason: String| Unprocessable(reason);
    let body = message.payload.as_deref().ok_or_else(|| poison("message: empty".into()))?;
    let envelope = Envelope::parse(body).map_err(|e| poison(e.to_string()))?;
    let decided = Outcome::decode(&envelope).map_err(|e| poison(e.to_string()))?;
    let (order_id, revision) = (decided.order_id(), decided.revision());
    let (product_id, outcome) = match decided {
        Outcome::Executed(executed) => (executed.product_id, ItemOutcome::Executed),
        Outcome::Canceled(canceled) => (canceled.product_id, ItemOutcome::Rejected(canceled.reason)),
    };
    Ok(Command {
        aggregate_id: order_id.to_string(),
        command: OrderCommand::RecordItemOutcome(RecordItemOutcome { product_id, revision, outcome }),
        metadata: EventMetadata::new(envelope.correlation_id, envelope.event_id.to_string(), ACTOR),
    })
}

impl MessageHandler for OutcomeHandler {
    /// Applies every outcome of the batch to its order, in message order, committed in
    /// one transaction.
    async fn handle(&self, messages: &[IncomingMessage]) -> anyhow::Result<Vec<Verdict>> {
        let mut verdicts: Vec<Verdict> = Vec::with_capacity(messages.len());
        let mut commands = Vec::new();
        let mut asked_by = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match decode(message) {
                Ok(command) => {
                    commands.push(command);
                    asked_by.push(index);
                    verdicts.push(Ok(Handled::Applied));
                }
                Err(poison) => verdicts.push(Err(poison)),
            }
        }
        if commands.is_empty() {
            return Ok(verdicts);
        }
        let results = self.orders.execute_all(&commands).await.context("applying outcomes")?;
        for ((result, command), index) in results.into_iter().zip(&commands).zip(asked_by) {
            if let Err(rule) = result {
                verdicts[index] =
                    Err(Unprocessable(format!("outcome for order {} refused: {rule}", command.aggregate_id)));
            }
        }
        Ok(verdicts)
    }
}

#[cfg(test)]
mod tests {
    //! Decoding outcome messages as the inventory relay publishes them, and refusing
    //! hostile ones before anything reaches the store.

    use domain::OrderId;
    use messaging::messages::outcomes::{ITEM_CANCELED, ITEM_EXECUTED};
    use serde_json::{Value, json};

    use super::*;

    fn executed(order_id: OrderId) -> Value {
        json!({
            "eventId": uuid::Uuid::new_v4(), "aggregateType": "Product", "aggregateId": "mug", "sequence": 12,
            "eventType": ITEM_EXECUTED, "eventVersion": "1.0", "occurredAt": "2024-05-01T10:00:00.000000Z",
            "correlationId": "checkout-42", "causationId": uuid::Uuid::new_v4().to_string(),
            "payload": {"orderId": order_id, "productId": "mug", "quantity": 2, "revision": 1},
        })
    }

    fn raw(body: Vec<u8>) -> IncomingMessage {
        IncomingMessage {
            topic: "inventory.order-outcomes".into(),
            partition: 0,
            offset: 3,
            key: None,
            payload: Some(body),
            headers: None,
        }
    }

    #[test]
    fn an_outcome_as_the_relay_publishes_it_records_the_items_outcome() {
        let order_id = OrderId::generate();
        let command = decode(&raw(serde_json::to_vec(&executed(order_id)).expect("encodes"))).expect("valid");
        assert_eq!(command.aggregate_id, order_id.to_string());
        let OrderCommand::RecordItemOutcome(record) = command.command else { panic!("an outcome") };
        assert_eq!((record.product_id.as_str(), record.revision, record.outcome), ("mug", 1, ItemOutcome::Executed));
        assert_eq!(command.metadata.correlation_id, "checkout-42");
    }

    #[test]
    fn hostile_outcomes_are_unprocessable_with_a_short_reason_naming_the_field() {
        let spoiled = |pointer: &str, value: Value| {
            let mut envelope = executed(OrderId::generate());
            *envelope.pointer_mut(pointer).expect(pointer) = value;
            raw(serde_json::to_vec(&envelope).expect("encodes"))
        };
        let cases: Vec<(&str, IncomingMessage, &str)> = vec![
            ("a NUL in the correlation id", spoiled("/correlationId", json!("c\0")), "correlationId"),
            ("a NUL in the causation id", spoiled("/causationId", json!("\0")), "causationId"),
            ("a NUL in the product id", spoiled("/payload/productId", json!("mug\0")), "payload"),
            ("a NUL in the event type", spoiled("/eventType", json!("OrderItemExecuted\0")), "eventType"),
            ("a 700 kB correlation id", spoiled("/correlationId", json!("x".repeat(700_000))), "message"),
            ("a 1 kB correlation id", spoiled("/correlationId", json!("x".repeat(1000))), "correlationId"),
            ("an order event", spoiled("/aggregateType", json!("Order")), "aggregateType"),
            ("an order id that is no UUID", spoiled("/payload/orderId", json!("o-1")), "payload"),
            ("a forged huge revision", spoiled("/payload/revision", json!(4_000_000_000_u64)), "payload.revision"),
            ("a zero revision", spoiled("/payload/revision", json!(0)), "payload.revision"),
            ("a negative revision", spoiled("/payload/revision", json!(-1)), "payload"),
            ("a forged huge sequence", spoiled("/sequence", json!(i64::MAX)), "sequence"),
            ("an unknown reason", spoiled("/eventType", json!(ITEM_CANCELED)), "payload.reason"),
            ("an unknown message type", spoiled("/eventType", json!("OrderItemTeleported")), "eventType"),
            ("an unknown version", spoiled("/eventVersion", json!("1.0\0")), "eventVersion"),
            ("a newer release's version", spoiled("/eventVersion", json!("9.0")), "eventVersion"),
            ("malformed JSON", raw(b"{\"eventId\"".to_vec()), "message"),
        ];
        for (label, message, field) in cases {
            let Err(Unprocessable(reason)) = decode(&message) else { panic!("[{label}] must be unprocessable") };
            assert!(
                reason.starts_with(field) || reason.contains(&format!("\"{field}\"")),
                "[{label}] the reason names {field}: {reason}"
            );
            assert!(reason.len() < 500, "[{label}] the reason quotes a short prefix at most ({} bytes)", reason.len());
            assert!(!reason.chars().any(char::is_control), "[{label}] no control character in the reason: {reason:?}");
        }
    }
}
