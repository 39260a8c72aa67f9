//! The application service for orders: turns one command into committed events and
//! an up-to-date view, and answers queries from the view.

use domain::OrderId;
use domain::order::{Order, OrderCommand, OrderError};
use eventstore::{AggregateStore, EventMetadata, ExecuteError, StoredEvent};
use projections::{Cursor, OrderFilter, OrderView, OrderViews, Page, ProjectionError};
use eventstore::{Aggregate, Feed};
use projections::latest_versions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// The view follower's position in the event feed.
pub const VIEW_FEED: &str = "view-catch-up";

/// Why an order operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// A business rule refused the command.
    #[error(transparent)]
    Rejected(#[from] OrderError),
    /// Concurrent writers kept winning; the client may retry.
    #[error("the order kept changing concurrently")]
    Conflict,
    /// No such order.
    #[error("order not found")]
    NotFound,
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl From<ExecuteError<OrderError>> for OrdersError {
    fn from(error: ExecuteError<OrderError>) -> Self {
        match error {
            ExecuteError::Rejected(e) => Self::Rejected(e),
            ExecuteError::Conflict => Self::Conflict,
            ExecuteError::Store(e) => Self::Storage(e.to_string()),
        }
    }
}

impl From<ProjectionError> for OrdersError {
    fn from(error: ProjectionError) -> Self {
        Self::Storage(error.to_string())
    }
}

/// Orders: commands through the event store, queries from the view.
pub struct Orders {
    store: AggregateStore<Order>,
    views: OrderViews,
}

impl Orders {
    /// Orders stored through `pool` (search path: the OMS schema).
    pub fn new(pool: PgPool) -> Self {
        Self { store: AggregateStore::event_sourced(pool.clone()), views: OrderViews::new(pool) }
    }

    /// Executes `command` on order `order_id` and returns the order as it then is,
    /// read-your-writes: the view is updated before this returns.
    pub async fn execute(&self, order_id: OrderId, command: OrderCommand, metadata: &EventMetadata) -> Result<OrderView, OrdersError> {
        let committed = telemetry::counted(Order::TYPE, metrics::command_type(&command), metrics::failure, self.store.execute(&order_id.to_string(), command, metadata)).await?;
        let view = self
            .views
            .catch_up(order_id, committed.version, &committed.events, || async {
                self.store.load_events(&order_id.to_string()).await.map_err(|e| ProjectionError::EventStore(e.to_string()))
            })
            .await?;
        view.ok_or(OrdersError::NotFound)
    }

    /// Keeps the order view up to date from the commit-ordered event feed until
    /// `shutdown`: what a crash between a commit and its inline view update left behind
    /// is caught up here, by itself. Idempotent: a view only moves forward.
    pub async fn follow_feed(&self, pool: PgPool, shutdown: CancellationToken) {
        let feed = Feed::new(pool, VIEW_FEED);
        feed.follow(1000, &shutdown, |events| async move {
            for (order_id, version) in latest_versions(&events, Order::TYPE) {
                let Ok(order_id) = order_id.parse::<OrderId>() else { continue };
                self.views
                    .catch_up(order_id, version, &[], || async {
                        self.store.load_events(&order_id.to_string()).await.map_err(|e| ProjectionError::EventStore(e.to_string()))
                    })
                    .await?;
            }
            Ok(())
        })
        .await;
    }

    /// The order as the view holds it.
    pub async fn get(&self, order_id: OrderId) -> Result<OrderView, OrdersError> {
        self.views.get(order_id).await?.ok_or(OrdersError::NotFound)
    }

    /// A page of orders, newest first.
    pub async fn list(&self, filter: &OrderFilter, limit: u32, cursor: Option<&Cursor>) -> Result<Page<OrderView>, OrdersError> {
        Ok(self.views.list(filter, limit, cursor).await?)
    }

    /// Every event of the order, oldest first.
    pub async fn history(&self, order_id: OrderId) -> Result<Vec<StoredEvent>, OrdersError> {
        let events = self.store.history(&order_id.to_string()).await?;
        if events.is_empty() { Err(OrdersError::NotFound) } else { Ok(events) }
    }
}
