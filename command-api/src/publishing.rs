//! What the OMS publishes: every order event, on the order-events topic, keyed by
//! order id so each order's events stay in order; the message is
//! [`messaging::messages::order_events`]'s, which the inventory saga reads.

use eventstore::FeedEvent;
use messaging::messages::order_events;
use messaging::{OutgoingMessage, Route, Unroutable};

/// Routes order events to `topic`.
pub struct OrderEventsRoute {
    /// The order-events topic.
    pub topic: String,
}

impl Route for OrderEventsRoute {
    fn topics(&self) -> Vec<String> {
        vec![self.topic.clone()]
    }

    /// Every order event becomes one message with its stored fields as the payload;
    /// no decoding is needed, so none is unroutable.
    fn route(&self, event: &FeedEvent) -> Result<Vec<OutgoingMessage>, Unroutable> {
        Ok(order_events::envelope(event)
            .map(|envelope| OutgoingMessage { topic: self.topic.clone(), key: event.aggregate_id.clone(), envelope })
            .into_iter()
            .collect())
    }
}
