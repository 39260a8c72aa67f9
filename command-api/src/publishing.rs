//! What the OMS publishes: every order event, on the order-events topic, keyed by
//! order id so each order's events stay in order.

use eventstore::FeedEvent;
use messaging::{Envelope, OutgoingMessage, Route};

/// Routes order events to `topic`.
pub struct OrderEventsRoute {
    /// The order-events topic.
    pub topic: String,
}

impl Route for OrderEventsRoute {
    fn topics(&self) -> Vec<String> {
        vec![self.topic.clone()]
    }

    fn route(&self, event: &FeedEvent) -> Vec<OutgoingMessage> {
        if event.aggregate_type != "Order" {
            return vec![];
        }
        vec![OutgoingMessage {
            topic: self.topic.clone(),
            key: event.aggregate_id.clone(),
            envelope: Envelope::from_feed(event, event.event_type.clone(), event.fields()),
        }]
    }
}
