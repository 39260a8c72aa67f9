//! The OMS's part of the operator commands (`service_kit::operations` runs them):
//! how an order's history is found, the view to rebuild, the route to re-drive on.

use domain::OrderId;
use eventstore::Events;
use messaging::KafkaSettings;
use projections::OrderViews;

use crate::publishing::OrderEventsRoute;
use crate::settings::Oms;

impl service_kit::Operated for Oms {
    type Views = OrderViews;
    type Route = OrderEventsRoute;

    fn migrations() -> &'static sqlx::migrate::Migrator {
        &migrations::OMS
    }

    fn events() -> Events<domain::order::Order> {
        Events::with_upcasters(domain::order::upcasters())
    }

    fn aggregate_id(id: &str) -> anyhow::Result<String> {
        let order_id: OrderId = id.parse().map_err(|_| anyhow::anyhow!("'{id}' is not an order id (a UUID)"))?;
        Ok(order_id.to_string())
    }

    fn route(kafka: &KafkaSettings) -> OrderEventsRoute {
        OrderEventsRoute { topic: kafka.topics.order_events.clone() }
    }
}
