//! The OMS's part of the operator commands (`service_kit::operations` runs them):
//! how an order's history is found, the view to rebuild, the route to re-drive on.

use domain::OrderId;
use eventstore::{Events, StoredEvent};
use messaging::KafkaSettings;
use projections::OrderViews;
use sqlx::PgPool;

use crate::orders::{Orders, OrdersError};
use crate::publishing::OrderEventsRoute;
use crate::settings::Oms;

impl service_kit::Operated for Oms {
    type Views = OrderViews;
    type Route = OrderEventsRoute;

    const MIGRATIONS: &'static sqlx::migrate::Migrator = &migrations::OMS;

    fn events() -> Events<domain::order::Order> {
        Events::with_upcasters(domain::order::upcasters())
    }

    async fn history(pool: PgPool, id: &str) -> anyhow::Result<Vec<StoredEvent>> {
        let order_id: OrderId = id.parse().map_err(|_| anyhow::anyhow!("'{id}' is not an order id (a UUID)"))?;
        match Orders::new(pool).history(order_id).await {
            Ok(events) => Ok(events),
            Err(OrdersError::NotFound) => anyhow::bail!("order {id} has no events"),
            Err(other) => Err(anyhow::Error::new(other).context("reading the order's history")),
        }
    }

    fn route(kafka: &KafkaSettings) -> OrderEventsRoute {
        OrderEventsRoute { topic: kafka.topics.order_events.clone() }
    }
}
