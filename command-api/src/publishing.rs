//! What the OMS publishes: every order event, on the order-events topic, keyed by
//! order id so each order's events stay in order.

use eventstore::FeedEvent;
use messaging::{Envelope, OutgoingMessage, Route, Unroutable};

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
        if event.aggregate_type != "Order" {
            return Ok(vec![]);
        }
        Ok(vec![OutgoingMessage {
            topic: self.topic.clone(),
            key: event.aggregate_id.clone(),
            envelope: Envelope::from_feed(event, event.event_type.clone(), event.fields()),
        }])
    }
}
