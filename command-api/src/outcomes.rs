//! The OMS outcome consumer: applies the inventory service's per-item outcomes to
//! orders. Idempotent through the domain: a redelivered or superseded outcome decides
//! nothing; one for a canceled order changes nothing (the inventory service releases
//! what the cancellation covers).
//!
//! Each outcome is decoded in its message's span, in the trace its headers carry: the
//! order events it leads to stay in the trace of the request that placed the order.

use std::sync::Arc;

use domain::order::{ItemOutcome, Order, OrderCommand, RecordItemOutcome, RejectionReason};
use domain::{OrderId, ProductId};
use eventstore::{Command, EventMetadata};
use messaging::{Envelope, Handled, IncomingMessage, MessageHandler, Unprocessable, Verdict};
use serde::Deserialize;

use crate::orders::Orders;

/// The message types of the outcomes topic.
pub const ITEM_EXECUTED: &str = "OrderItemExecuted";
/// See [`ITEM_EXECUTED`].
pub const ITEM_CANCELED: &str = "OrderItemCanceled";

const ACTOR: &str = "oms-outcomes";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutcomePayload {
    order_id: OrderId,
    product_id: ProductId,
    revision: u64,
    reason: Option<RejectionReason>,
}

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

fn decode_in_span(message: &IncomingMessage) -> Result<Command<Order>, Unprocessable> {
    let poison = |reason: String| Unprocessable(reason);
    let body = message.payload.as_deref().ok_or_else(|| poison("empty message".into()))?;
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| poison(format!("not an envelope: {e}")))?;
    let payload: OutcomePayload =
        serde_json::from_value(envelope.payload.clone()).map_err(|e| poison(format!("{} payload: {e}", envelope.event_type)))?;
    let outcome = match (envelope.event_type.as_str(), payload.reason) {
        (ITEM_EXECUTED, _) => ItemOutcome::Executed,
        (ITEM_CANCELED, Some(reason)) => ItemOutcome::Rejected(reason),
        (ITEM_CANCELED, None) => return Err(poison("OrderItemCanceled without a reason".into())),
        (other, _) => return Err(poison(format!("unknown message type {other}"))),
    };
    Ok(Command {
        aggregate_id: payload.order_id.to_string(),
        command: OrderCommand::RecordItemOutcome(RecordItemOutcome { product_id: payload.product_id, revision: payload.revision, outcome }),
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
        let results = self.orders.execute_all(&commands).await.map_err(|e| anyhow::anyhow!("applying outcomes: {e}"))?;
        for ((result, command), index) in results.into_iter().zip(&commands).zip(asked_by) {
            if let Err(rule) = result {
                verdicts[index] = Err(Unprocessable(format!("outcome for order {} refused: {rule}", command.aggregate_id)));
            }
        }
        Ok(verdicts)
    }
}
